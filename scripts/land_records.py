"""Copy the finished jobs' records of a run into a folder that is committed, while the run goes on.

    python scripts/land_records.py --run results/paper --into results/reference/cpu-paper --config config/paper.yaml

A job has finished when Snakemake wrote its benchmark file (results/<run>/benchmarks/<job>.tsv, after the job's
command returned); its record folder (results/<run>/records/<job>/) is then complete, and is copied whole. Records
already in the target are never overwritten. The target also gets the config (config.yaml) and jobs.tsv: per finished
job its wall time in seconds (Snakemake's benchmark `s`) and its record count, keeping the rows of jobs that an earlier
run landed (a restart in a fresh worktree). Run it as often as you like: an interrupted run loses nothing that landed. `make paper-full` copies these records back where the run writes them.
"""
from __future__ import annotations

import argparse
import csv
import shutil
from pathlib import Path


def finished_jobs(run: Path) -> dict[str, float]:
    """Job (its path under benchmarks/, without .tsv) -> wall seconds, for every job Snakemake finished."""
    jobs = {}
    for tsv in sorted((run / "benchmarks").rglob("*.tsv")):
        with tsv.open() as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        if rows:
            jobs[tsv.relative_to(run / "benchmarks").with_suffix("").as_posix()] = float(rows[-1]["s"])
    return jobs


def land(run: Path, into: Path, config: Path) -> list[str]:
    """Copy each finished job's records not yet in `into`; returns the jobs copied now."""
    copied = []
    for job in finished_jobs(run):
        source = run / "records" / job
        if not source.is_dir():
            continue  # a job without records of its own (the analysis, the paper)
        target = into / "records" / job
        new = [p for p in source.rglob("*.json") if not (target / p.relative_to(source)).exists()]
        for path in new:
            (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / path.relative_to(source))
        if new:
            copied.append(job)
    into.mkdir(parents=True, exist_ok=True)
    shutil.copy2(config, into / "config.yaml")
    seconds = landed_times(into / "jobs.tsv") | finished_jobs(run)  # a job landed from an earlier run keeps its row
    with (into / "jobs.tsv").open("w") as f:
        f.write("job\twall_s\trecords\n")
        for job, wall in sorted(seconds.items()):
            records = into / "records" / job
            if records.is_dir():
                f.write(f"{job}\t{wall:.1f}\t{len(list(records.rglob('*.json')))}\n")
    return copied


def landed_times(jobs_tsv: Path) -> dict[str, float]:
    """Job -> wall seconds as an earlier landing wrote them (jobs.tsv), or nothing."""
    if not jobs_tsv.exists():
        return {}
    with jobs_tsv.open() as f:
        return {row["job"]: float(row["wall_s"]) for row in csv.DictReader(f, delimiter="\t")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path, help="the run's folder, results/<run>")
    parser.add_argument("--into", required=True, type=Path, help="the committed folder, results/reference/<name>")
    parser.add_argument("--config", required=True, type=Path, help="the config the run was started with")
    args = parser.parse_args()
    copied = land(args.run, args.into, args.config)
    print(f"{len(copied)} jobs landed now: {', '.join(copied) or 'none'}")


if __name__ == "__main__":
    main()
