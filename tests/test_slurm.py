"""profiles/slurm against a real scheduler: a two-node Slurm cluster on 127.0.0.1 (tests/slurm/cluster.sh) runs
the small workflow tests/slurm/Snakefile, submitted through the profile users use, and a scaling job over both
nodes."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from convbench.parallel.cells import scaling_cell
from convbench.spec import ArchSpec

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
RETRIES = 2  # profiles/slurm/config.yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def why_slurm_cannot_start() -> str | None:
    missing = [tool for tool in ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "srun", "squeue")
               if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None]
    if missing:
        return f"Slurm cannot start here: {', '.join(missing)} missing (`make slurm` installs slurm-wlm and munge)"
    if os.geteuid() != 0:
        return "Slurm cannot start here: the test cluster runs slurmctld, slurmd and munged as root"
    return None


def cannot_start(reason: str):
    """Skip where Slurm cannot run; in CI, which installs it (.ci/run), that is a failure."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """The environment of a client of the running test cluster; the cluster stops after the session."""
    reason = why_slurm_cannot_start()
    if reason:
        cannot_start(reason)
    directory = tmp_path_factory.mktemp("slurm")
    ports = {"SLURMCTLD_PORT": str(free_port()), "SLURMD_PORT": str(free_port())}
    env = {**os.environ, **ports, "PATH": f"{directory / 'bin'}:{os.environ['PATH']}:/usr/sbin:/sbin",
           "SLURM_CONF": str(directory / "slurm.conf")}
    started = subprocess.run(["bash", CLUSTER, "start", directory], env=env, capture_output=True, text=True,
                             timeout=120)
    try:
        if started.returncode != 0:
            cannot_start(f"Slurm did not start:\n{started.stdout}{started.stderr}")
        yield env
    finally:
        subprocess.run(["bash", CLUSTER, "stop", directory], env=env, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def cluster_run(slurm, tmp_path_factory):
    """The small workflow, run once through `snakemake --profile profiles/slurm`: (exit code, log, work dir)."""
    work = tmp_path_factory.mktemp("slurm-workflow")
    shutil.copy(ROOT / "tests" / "slurm" / "Snakefile", work / "Snakefile")
    command = [sys.executable, "-m", "snakemake", "--profile", ROOT / "profiles" / "slurm",
               "--workflow-profile", ROOT / "profiles" / "default",  # as in the repository, where it is implicit
               # Status checks every second instead of every 40 s: only the waiting changes.
               "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1"]
    result = subprocess.run(command, cwd=work, env=slurm, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=300)
    return result.returncode, result.stdout, work


def slurm_jobs(log: str) -> dict[str, list[str]]:
    """Rule -> Slurm job ids, from 'Job N has been submitted with SLURM jobid M (log: .../rule_<rule>/...)'."""
    jobs: dict[str, list[str]] = {}
    for jobid, rule in re.findall(r"has been submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/", log):
        jobs.setdefault(rule, []).append(jobid)
    return jobs


def squeue_states(env: dict, run_id: str) -> dict[str, str]:
    """Slurm job id -> state of the jobs named after the run, as slurmctld reports them (no accounting)."""
    out = subprocess.run(["squeue", "--states=all", "--noheader", "--format=%i|%T", "--name", run_id],
                         env=env, capture_output=True, text=True, check=True).stdout
    return dict(line.split("|") for line in out.split())


def test_the_cluster_listens_on_localhost_only(slurm):
    ports = {int(slurm["SLURMCTLD_PORT"]), int(slurm["SLURMD_PORT"]), int(slurm["SLURMD_PORT"]) + 1}  # two slurmd
    listening = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port = local.rsplit(":", 1)
            if state == "0A" and int(port, 16) in ports:  # 0A: LISTEN
                listening[int(port, 16)] = address
    assert set(listening) == ports
    assert set(listening.values()) == {"0100007F"}  # 127.0.0.1


def test_outputs_are_right(cluster_run):
    _, log, work = cluster_run
    for n in (1, 2, 3):
        assert (work / f"out/square_{n}.txt").read_text().split()[0] == str(n * n), log[-3000:]
    assert (work / "out/total.txt").read_text().split()[0] == "14"


def test_every_job_went_through_sbatch(cluster_run, slurm):
    _, log, work = cluster_run
    jobs = slurm_jobs(log)
    assert {rule: len(ids) for rule, ids in jobs.items()} == {
        "square": 3, "total": 1, "flaky": 2, "broken": 1 + RETRIES}, log[-3000:]
    # Each output names the Slurm job it was written in: the last job submitted for its rule.
    squares = {(work / f"out/square_{n}.txt").read_text().split()[1] for n in (1, 2, 3)}
    assert squares == set(jobs["square"])
    assert (work / "out/total.txt").read_text().split()[1] == jobs["total"][0]
    # slurmctld knows every one of them, under the run's name, and how each ended.
    run_id = re.search(r"SLURM run ID: (\S+)", log).group(1)
    states = squeue_states(slurm, run_id)
    assert set(states) == {jobid for ids in jobs.values() for jobid in ids}
    assert {states[j] for j in jobs["square"] + jobs["total"] + jobs["flaky"][1:]} == {"COMPLETED"}
    assert {states[j] for j in jobs["broken"] + jobs["flaky"][:1]} == {"FAILED"}
    # The status came from squeue: the plugin did not fall back to sacct, which has no accounting to read here.
    assert "Falling back to 'sacct'" not in log
    assert "status command is not 'sacct'" in log


def test_a_job_that_fails_once_is_retried_and_succeeds(cluster_run):
    _, log, work = cluster_run
    first, second = slurm_jobs(log)["flaky"]
    attempts = [line.split() for line in (work / "attempts/flaky.txt").read_text().splitlines()]
    assert attempts == [["100", first], ["200", second]]  # mem_mb = 100 * attempt: the retry is attempt 2
    assert (work / "out/flaky.txt").read_text().split() == [second]
    assert re.search(r"Finished jobid: \d+ \(Rule: flaky\)", log)


def test_a_job_that_always_fails_is_reported_and_the_others_finish(cluster_run):
    returncode, log, work = cluster_run
    assert returncode != 0
    broken = slurm_jobs(log)["broken"]
    assert (work / "attempts/broken.txt").read_text().split() == broken  # tried 1 + retries times
    assert f"SLURM-job '{broken[-1]}' failed" in log
    assert "Error in rule broken" in log
    assert not (work / "out/broken.txt").exists()
    for rule in ("square", "total", "flaky"):  # keep-going: everything that does not need broken finished
        assert re.search(rf"Finished jobid: \d+ \(Rule: {rule}\)", log)
    assert "5 of 7 steps (71%) done" in log


def test_the_conda_env_for_clusters_pins_what_pyproject_pins():
    """envs/convbench.yaml (--sdm conda) asks for the same packages as the pip set-up, CPU TensorFlow included."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip = set(project["dependencies"] + project["optional-dependencies"]["cpu"])
    # Snakemake and its Slurm plugin submit the jobs from outside the env; the env runs the rules' commands.
    pip = {dep.split("#")[0].strip() for dep in pip if not dep.startswith("snakemake")}
    env = yaml.safe_load((ROOT / "envs" / "convbench.yaml").read_text())
    pip_in_env = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert sorted(pip_in_env) == sorted(pip)
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert python == "python=" + project["requires-python"].removeprefix(">=")
    # Jobs run in the repository root, where PYTHONPATH (relative) must lead to the package.
    assert (ROOT / env["variables"]["PYTHONPATH"] / "convbench" / "__main__.py").is_file()


def test_make_test_installs_slurm_and_munge_where_missing():
    """The README's `make test` sets up everything, these tests' Slurm too, not only .ci/run."""
    planned = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    [install] = [line for line in planned.splitlines() if "slurm-wlm" in line]
    assert "apt-get install" in install and "munge" in install
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.slow
def test_a_scaling_job_over_two_nodes_runs_through_srun(slurm, tmp_path):
    """An sbatch job of 2 nodes, one task each, runs what the scaling rule runs (convbench run): srun starts a
    torchrun agent per node, meeting at a c10d rendezvous on node1, and a TensorFlow worker per node under
    MultiWorkerMirroredStrategy (TF_CONFIG from Slurm); one process per node, gradients crossing between them."""
    spec = ArchSpec.from_dict("tiny", {"blocks": [{"width": 8}, {"width": 8}]}, 3, 10)
    quick = dict(warmup=1, min_repeats=2, max_repeats=3, max_seconds=1.0, nodes=2)
    cells = [scaling_cell(spec, framework=f, devices=2, parallelism=p, batch_size=8, image_size=8, threads=1, **quick)
             for f, p in (("torch", "data"), ("tensorflow", "tensor"))]  # the others: tests/test_parallel.py
    (tmp_path / "cells.json").write_text(json.dumps([c.to_dict() for c in cells]))
    cells_json = f"\"$(cat {tmp_path / 'cells.json'})\""
    run = f"{sys.executable} -m convbench run --cells-json {cells_json} --out {tmp_path / 'records'}"
    done = subprocess.run(["sbatch", "--parsable", "--wait", "--nodes=2", "--ntasks-per-node=1", "--cpus-per-task=1",
                           f"--output={tmp_path / 'job.log'}", f"--chdir={ROOT}", "--wrap", run],
                          env=slurm, capture_output=True, text=True, timeout=240)
    log = (tmp_path / "job.log").read_text() if (tmp_path / "job.log").exists() else ""
    assert done.returncode == 0, done.stderr + log[-4000:]
    jobid = done.stdout.strip().split(";")[0]
    nodelist = subprocess.run(["squeue", "--states=all", "--noheader", "-j", jobid, "-o", "%N"], env=slurm,
                              capture_output=True, text=True, check=True).stdout.strip()
    assert nodelist == "node[1-2]"
    records = {c.id: json.loads((tmp_path / "records" / f"{c.id}.json").read_text()) for c in cells}
    assert {r["status"] for r in records.values()} == {"ok"}, [r["error"] for r in records.values()]
    for cell in cells:
        record = records[cell.id]
        assert cell.id.endswith("-2nodes_b8_s0_scaling") and record["communication"]["payload_matches_model"]
        if cell.framework == "torch":
            assert sorted(record["process"]["rank_hosts"]) == ["node1", "node2"]  # the rendezvous orders the ranks
            assert record["environment"]["distributed"]["world_size"] == 2
        else:
            assert record["process"]["workers"] == [f"127.0.0.1:{28800 + i}" for i in range(2)]
            assert record["environment"]["distributed"]["strategy"] == "tf.distribute.MultiWorkerMirroredStrategy"
