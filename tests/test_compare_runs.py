"""scripts/compare_runs.py on fixture verdict files: contradictions, the same outcome and the decided share."""
import json
import subprocess
import sys


def verdict(key, estimate, lo, hi, outcome, fact=None):
    return {"key": key, "subject": "a", "reference": "b", "quantity": "backward time", "estimate": estimate, "lo": lo,
            "hi": hi, "outcome": outcome, "kind": "launches", "margin": 1.05, "unit": "ratio", "scale": "time",
            "n": 3, "level": None, "fact": fact}


def write(root, study, verdicts):
    (root / study).mkdir(parents=True, exist_ok=True)
    (root / study / "verdicts.json").write_text(json.dumps(verdicts))
    return root


def compare(tmp_path, first, second, *args):
    a, b = write(tmp_path / "a", "engines", first), write(tmp_path / "b", "engines", second)
    return subprocess.run([sys.executable, "scripts/compare_runs.py", str(a), str(b), *args], capture_output=True,
                          text=True)


def test_identical_verdicts_pass(tmp_path):
    same = [verdict(f"engines/k{i}", 1.0 + i / 100, 0.99, 1.04, "equivalent") for i in range(5)]
    result = compare(tmp_path, same, same)
    assert result.returncode == 0, result.stdout
    assert "5 comparisons in both runs: 0 contradictions, the same outcome in 100.0 %" in result.stdout
    assert "decided in both in 100.0 %" in result.stdout


def test_a_contradiction_fails_and_is_listed_first(tmp_path):
    """The issue's flip under the old rule (1.04 [1.01, 1.07] against [0.909, 1.19]) is undecided both times now; a
    contradiction is two decided outcomes that differ."""
    first = [verdict("engines/x", 1.04, 1.01, 1.07, "undecided"), verdict("engines/y", 0.5, 0.45, 0.55, "faster"),
             verdict("engines/z", 1.2, 1.1, 1.3, "slower"), verdict("engines/w", 1.0, 0.98, 1.02, "equivalent"),
             verdict("engines/only-a", 1.0, 0.9, 1.1, "undecided")]
    second = [verdict("engines/x", 1.04, 0.909, 1.19, "undecided"),
              verdict("engines/y", 0.52, 0.5, 0.6, "faster"),
              verdict("engines/z", 1.03, 1.01, 1.04, "equivalent"),  # decided both times, differently
              verdict("engines/w", 1.05, 0.97, 1.2, "undecided")]  # moved from decided to undecided: no contradiction
    result = compare(tmp_path, first, second)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("contradiction: engines/z") and "slower" in lines[0] and "equivalent" in lines[0]
    assert any(line.startswith("outcome moved: engines/w") for line in lines)
    assert not any("engines/x" in line or "engines/y" in line for line in lines)
    assert "4 comparisons in both runs: 1 contradictions, the same outcome in 50.0 %" in result.stdout
    assert "decided in both in 50.0 %" in result.stdout and "1 in the first, 0 in the second" in result.stdout


def test_the_thresholds_without_contradictions(tmp_path):
    first = [verdict(f"engines/k{i}", 0.5, 0.4, 0.6, "faster") for i in range(7)]
    first += [verdict(f"engines/u{i}", 1.0, 0.9, 1.1, "undecided") for i in range(3)]
    second = [*first[:9], verdict("engines/u2", 1.0, 0.98, 1.02, "equivalent")]
    result = compare(tmp_path, first, second)  # the same in 90 %, decided in both in 70 %: passes
    assert result.returncode == 0, result.stdout
    assert compare(tmp_path, first, second, "--same", "0.95").returncode == 1
    assert compare(tmp_path, first, second, "--decided", "0.8").returncode == 1


def test_a_folder_without_verdicts_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    result = subprocess.run([sys.executable, "scripts/compare_runs.py", str(tmp_path / "empty"), str(tmp_path / "empty")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "no */verdicts.json" in result.stderr


def test_a_fact_without_an_interval_is_compared_apart(tmp_path):
    nan = float("nan")
    first = [verdict("engines/k", 0.5, 0.4, 0.6, "faster"), verdict("engines/size", nan, nan, nan, "none", "untried")]
    second = [first[0], verdict("engines/size", nan, nan, nan, "none", "a different size per block")]
    result = compare(tmp_path, first, second)
    assert result.returncode == 0, result.stdout
    assert "1 comparisons in both runs: 0 contradictions" in result.stdout
    assert "fact changed:  engines/size: 'untried' -> 'a different size per block'" in result.stdout


def test_a_copy_counts_once_and_committed_records_count_apart(tmp_path):
    """A headline that repeats a comparison under its own key (copy_of) is that comparison, not another; the
    reference study's comparisons read committed records, the same in every run, and are left out of the shares the
    thresholds hold for (printed with them beside)."""
    unit = verdict("engines/k3", 1.0, 0.9, 1.1, "undecided")
    copy = {**unit, "key": "engines/headline", "copy_of": "engines/k3"}
    decided = [verdict(f"engines/d{i}", 0.5, 0.4, 0.6, "faster") for i in range(3)]
    fixed = [verdict(f"reference/r{i}", 1.0, 0.8, 1.2, "undecided") for i in range(4)]
    a, b = write(tmp_path / "a", "engines", [unit, copy, *decided]), write(tmp_path / "b", "engines", [unit, copy, *decided])
    for root in (a, b):
        write(root, "reference", fixed)
    result = subprocess.run([sys.executable, "scripts/compare_runs.py", str(a), str(b)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout  # 3 of the 4 measured comparisons decided: 75 %
    assert "4 comparisons in both runs: 0 contradictions, the same outcome in 100.0 %" in result.stdout
    assert "decided in both in 75.0 %" in result.stdout
    assert "with the 4 of committed records: 8 comparisons" in result.stdout and "decided in both in 37.5 %" in result.stdout
