"""Record builders of one study each, shared by that study's tests and by tests that build on its records."""
