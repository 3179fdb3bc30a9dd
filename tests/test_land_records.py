"""scripts/land_records.py: the finished jobs' records of a running run go into a committed folder, never over one."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def job(run: Path, name: str, cells: int, finished: bool, seconds: float = 12.5):
    folder = run / "records" / name
    folder.mkdir(parents=True)
    for i in range(cells):
        (folder / f"cell{i}.json").write_text(json.dumps({"cell_id": f"cell{i}", "job": name}))
    if finished:  # Snakemake writes the benchmark file once the job's command returned
        tsv = run / "benchmarks" / f"{name}.tsv"
        tsv.parent.mkdir(parents=True, exist_ok=True)
        tsv.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:12\t100\n")


def land(run: Path, into: Path, config: Path) -> str:
    result = subprocess.run([sys.executable, str(ROOT / "scripts/land_records.py"), "--run", str(run), "--into",
                             str(into), "--config", str(config)], capture_output=True, text=True, check=True)
    return result.stdout


def test_finished_jobs_land_once_and_unfinished_ones_wait(tmp_path):
    run, into, config = tmp_path / "results/paper", tmp_path / "committed", tmp_path / "paper.yaml"
    config.write_text("run: paper\n")
    job(run, "train/torch/kernel-k3-w8-planted", 3, finished=True)
    job(run, "train/torch/kernel-k5-cc-w12-planted", 2, finished=False)  # still running: not complete
    assert "1 jobs landed now: train/torch/kernel-k3-w8-planted" in land(run, into, config)
    assert sorted(p.name for p in (into / "records/train/torch/kernel-k3-w8-planted").glob("*.json")) == \
        ["cell0.json", "cell1.json", "cell2.json"]
    assert not (into / "records/train/torch/kernel-k5-cc-w12-planted").exists()
    assert (into / "config.yaml").read_text() == "run: paper\n"
    assert (into / "jobs.tsv").read_text().splitlines() == ["job\twall_s\trecords",
                                                             "train/torch/kernel-k3-w8-planted\t12.5\t3"]
    # what landed is never overwritten; a second call copies nothing new
    (into / "records/train/torch/kernel-k3-w8-planted/cell0.json").write_text("committed")
    assert "0 jobs landed now" in land(run, into, config)
    assert (into / "records/train/torch/kernel-k3-w8-planted/cell0.json").read_text() == "committed"


def test_a_second_run_lands_beside_the_first_and_keeps_its_wall_times(tmp_path):
    """A restart in a fresh worktree holds only its own jobs' benchmark files: jobs.tsv keeps the earlier rows."""
    first, second, into, config = tmp_path / "a", tmp_path / "b", tmp_path / "committed", tmp_path / "paper.yaml"
    config.write_text("run: paper\n")
    job(first, "train/torch/kernel-k3-w8-planted", 2, finished=True, seconds=30.0)
    land(first, into, config)
    job(second, "speed", 4, finished=True, seconds=600.0)
    assert "1 jobs landed now: speed" in land(second, into, config)
    assert (into / "jobs.tsv").read_text().splitlines() == ["job\twall_s\trecords", "speed\t600.0\t4",
                                                             "train/torch/kernel-k3-w8-planted\t30.0\t2"]
