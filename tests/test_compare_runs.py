"""scripts/compare_runs.py on fixture verdict files: the shares of same words and covered estimates."""
import json
import subprocess
import sys


def verdict(key, estimate, lo, hi, word):
    return {"key": key, "subject": "a", "reference": "b", "quantity": "backward time", "estimate": estimate, "lo": lo,
            "hi": hi, "word": word, "unit": "ratio", "n": 3}


def write(root, study, verdicts):
    (root / study).mkdir(parents=True, exist_ok=True)
    (root / study / "verdicts.json").write_text(json.dumps(verdicts))
    return root


def compare(tmp_path, first, second, *args):
    a, b = write(tmp_path / "a", "engines", first), write(tmp_path / "b", "engines", second)
    return subprocess.run([sys.executable, "scripts/compare_runs.py", str(a), str(b), *args], capture_output=True,
                          text=True)


def test_identical_verdicts_pass(tmp_path):
    same = [verdict(f"engines/k{i}", 1.0 + i / 10, 0.9, 1.5, "about as fast as") for i in range(5)]
    result = compare(tmp_path, same, same)
    assert result.returncode == 0, result.stdout
    assert "5 comparisons in both runs: same verdict in 100.0 %" in result.stdout and "covers the other estimate in 100.0 %" in result.stdout


def test_a_changed_word_and_an_estimate_outside_both_intervals_are_counted(tmp_path):
    first = [verdict("engines/x", 1.04, 0.87, 1.23, "about as fast as"), verdict("engines/y", 0.5, 0.45, 0.55, "faster than"),
             verdict("engines/z", 2.0, 1.9, 2.1, "slower than"), verdict("engines/w", 1.0, 0.9, 1.1, "about as fast as"),
             verdict("engines/only-a", 1.0, 0.9, 1.1, "about as fast as")]
    second = [verdict("engines/x", 0.71, 0.67, 0.76, "faster than"),  # issue 14's pair: word and interval both move
              verdict("engines/y", 0.52, 0.5, 0.6, "faster than"),  # covered both ways
              verdict("engines/z", 2.3, 2.15, 2.5, "slower than"),  # same word; neither interval holds the other estimate
              verdict("engines/w", 1.05, 1.01, 1.2, "about as fast as")]  # first interval covers 1.05
    result = compare(tmp_path, first, second)
    assert result.returncode == 1  # 3 of 4 the same word: below 95 %
    assert "word changed: engines/x" in result.stdout
    assert "not covered:  engines/x" in result.stdout and "not covered:  engines/z" in result.stdout
    assert "engines/y" not in result.stdout and "engines/w" not in result.stdout
    assert "4 comparisons in both runs: same verdict in 75.0 %" in result.stdout
    assert "covers the other estimate in 50.0 %" in result.stdout and "1 in the first, 0 in the second" in result.stdout
    assert compare(tmp_path, first, second, "--same", "0.7", "--covered", "0.5").returncode == 0


def test_a_folder_without_verdicts_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    result = subprocess.run([sys.executable, "scripts/compare_runs.py", str(tmp_path / "empty"), str(tmp_path / "empty")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "no */verdicts.json" in result.stderr


def test_a_verdict_without_an_interval_counts_for_its_word_not_for_coverage(tmp_path):
    nan = float("nan")
    first = [verdict("engines/k", 1.0, 0.9, 1.1, "about as fast as"), verdict("engines/size", nan, nan, nan, "untried")]
    result = compare(tmp_path, first, first)
    assert result.returncode == 0, result.stdout
    assert "2 comparisons in both runs: same verdict in 100.0 %" in result.stdout
    assert "covers the other estimate in 100.0 %" in result.stdout
