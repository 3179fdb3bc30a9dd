"""What a new user gets wrong, through the commands they type: Snakemake on a copy of the workflow (dry runs,
and one real run killed half way) and the analysis's command line. Bad input: one line that names the file or
the field, exit status 2, no traceback."""
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import tiny_pipeline

from convbench import config as convbench_config

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
PROFILE_NOTICE = "Using workflow specific profile"  # Snakemake's own line, before the Snakefile runs


def snakemake(work, *args, timeout=300):
    return subprocess.run([*SNAKEMAKE, *args], cwd=work, capture_output=True, text=True, timeout=timeout)


def refusal(result) -> str:
    """The one line a refused command printed."""
    lines = [line for line in (result.stdout + result.stderr).splitlines() if not line.startswith(PROFILE_NOTICE)]
    assert result.returncode == 2 and len(lines) == 1, result.stdout + result.stderr
    assert lines[0].startswith("convbench: error: ")
    return lines[0]


def planned(result) -> dict[str, int]:
    """Rule -> jobs, from a dry run's "Job stats" table."""
    assert result.returncode == 0, result.stdout + result.stderr
    table = (result.stdout + result.stderr).split("Job stats:")[1].split("\n\n")[0]
    return {row[0]: int(row[1]) for row in map(str.split, table.splitlines()) if len(row) == 2 and row[1].isdigit()}


@pytest.fixture
def work(tmp_path):
    """A copy of the workflow whose config/config.yaml is the tiny one: two studies, both frameworks, scaling."""
    default = yaml.safe_load(Path("config/config.yaml").read_text())
    tiny_pipeline(tmp_path, scaling={**default["scaling"], "devices": [1]})
    return tmp_path


def user_config(work, name="my.yaml", **changes):
    """A config of the user's own beside the workflow: the tiny one, one study, PyTorch only, no scaling."""
    mine = {k: v for k, v in yaml.safe_load((work / "config/config.yaml").read_text()).items() if k != "scaling"}
    mine.update(run="mine", frameworks=["torch"], engines={"torch": ["eager"]},
                studies={"kernel": {"architectures": ["k3"], "tasks": ["speed"]}}, **changes)
    (work / name).write_text(yaml.safe_dump(mine, sort_keys=False))
    return work / name


def test_a_configfile_stands_alone(work):
    jobs = planned(snakemake(work, "-n", "--cores", "2", "--configfile", user_config(work)))
    assert jobs["measure"] == 2  # speed and layers (PyTorch only): nothing of TensorFlow, train or scaling
    assert "train" not in jobs and "scaling" not in jobs
    # without --configfile, config/config.yaml is still read
    assert {"train", "scaling"} <= set(planned(snakemake(work, "-n", "--cores", "2")))


@pytest.mark.parametrize("change, message", [
    ({"bogus": 1}, r"my\.yaml: \(top level\): Additional properties are not allowed \('bogus' was unexpected\)"),
    ({"threads": 2.0}, r"my\.yaml: threads: 2\.0 is not of type 'integer'"),
    ({"speed": {"image_size": 2}}, r"my\.yaml: speed\.image_size: images of 2x2 are too small for architecture k3"),
    ({"threads": convbench_config.cores() + 1}, r"my\.yaml: threads: \d+ threads, but this machine gives this process"),
    ({"train": {"lr": float("nan")}}, r"my\.yaml: train\.lr: nan is not of type 'number'"),
    ({"studies": {"kernel": {"architectures": ["k3"], "tasks": ["train"], "data": {"dataset": "cifar10"}}}},
     r"my\.yaml: studies\.kernel\.data\.root: must name the directory holding cifar10"),
], ids=["unknown key", "float threads", "tiny images", "threads beyond the cores", "lr nan", "study data, no root"])
def test_snakemake_refuses_a_bad_config_in_one_line(work, change, message):
    mine = yaml.safe_load(user_config(work).read_text())
    for key, value in change.items():
        mine[key] = {**mine[key], **value} if isinstance(value, dict) and key != "studies" else value
    (work / "my.yaml").write_text(yaml.safe_dump(mine))
    assert re.search(message, refusal(snakemake(work, "-n", "--cores", "2", "--configfile", "my.yaml")))


def test_snakemake_refuses_more_devices_than_cores(work):
    devices = convbench_config.cores() + 1
    scaling = {"frameworks": ["torch"], "architectures": ["k3"], "devices": [1, devices], "parallelism": ["data"],
               "scaling": ["weak"], "batch_size": 16, "straggler_ms": []}
    line = refusal(snakemake(work, "-n", "--cores", "2", "--configfile", user_config(work, scaling=scaling)))
    assert line.endswith(f"my.yaml: scaling.devices: {devices} CPU devices need a core each, but this machine "
                         f"gives this process {devices - 1} cores")


def test_snakemake_refuses_cuda_without_a_gpu(work):
    if convbench_config.gpus():
        pytest.skip("this machine has a GPU")
    line = refusal(snakemake(work, "-n", "--cores", "2", "--configfile", user_config(work, device="cuda")))
    assert line.endswith("my.yaml: device: cuda, but nvidia-smi finds no NVIDIA GPU on this machine")


def test_snakemake_refuses_a_key_given_twice(work):
    path = user_config(work)
    path.write_text(path.read_text() + "run: again\n")
    lines = path.read_text().splitlines()
    assert refusal(snakemake(work, "-n", "--cores", "2", "--configfile", "my.yaml")).endswith(
        f"my.yaml: not valid YAML (line {len(lines)}, column 1): duplicate key 'run'")


def test_snakemake_names_the_file_and_line_of_a_yaml_error(work):
    (work / "config/config.yaml").write_text("run: tiny\nthreads: [2\n")
    assert refusal(snakemake(work, "-n", "--cores", "2")).startswith(
        "convbench: error: config/config.yaml: not valid YAML (line 3, column 1): ")


# --- the analysis's command line --------------------------------------------------------------------------------

@pytest.mark.parametrize("records, named", [
    ({"speed/torch/cell.json": '{"schema_version": 1, "cell_id": "cell", "st'}, "records/speed/torch/cell.json: "),
    ({}, "records: no records (*.json) in it"),
    (None, "records: no such records directory"),
], ids=["corrupted record", "empty folder", "missing folder"])
def test_analyse_names_the_bad_record_or_folder_in_one_line(tmp_path, records, named):
    if records is not None:
        (tmp_path / "records").mkdir()
    for name, text in (records or {}).items():
        (tmp_path / "records" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "records" / name).write_text(text)
    result = subprocess.run([sys.executable, "-m", "convbench", "analyse", "--records", "records", "--out", "out"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"convbench: error: {named}")


# --- an interrupted run -----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_killed_run_resumes_after_unlock_and_skips_the_finished_cells(work):
    """kill -9 during a job's second cell; the rerun needs --unlock (as the README says), then runs the
    second cell only, though Snakemake empties the job's output folder first."""
    mine = yaml.safe_load(user_config(work).read_text())
    mine["train"].update(epochs=10, seeds=[0, 1])  # a few seconds a cell: time to kill the job during the second
    mine["studies"] = {"kernel": {"architectures": ["k3"], "tasks": ["train"]}}  # one job per network: its seeds
    (work / "my.yaml").write_text(yaml.safe_dump(mine))
    # the target first: --configfile takes every word after it
    target = ["results/mine/records/train/torch/kernel-k3", "--cores", "2", "--configfile", "my.yaml"]
    stage = work / "results/mine/records/train/torch/kernel-k3.partial"
    run = subprocess.Popen([*SNAKEMAKE, *target], cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not list(stage.glob("*.json")) and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    [finished] = list(stage.glob("*.json"))
    assert "LockException" in snakemake(work, *target).stderr
    assert snakemake(work, "--unlock", "--configfile", "my.yaml").returncode == 0
    result = snakemake(work, *target)
    assert result.returncode == 0, result.stdout + result.stderr
    log = (work / "results/mine/logs/train/torch/kernel-k3.log").read_text()
    assert f"{finished.stem}: not run again" in log and "[1/1] kernel_k3" in log
    records = {p.name: json.loads(p.read_text())
               for p in (work / "results/mine/records/train/torch/kernel-k3").glob("*.json")}
    assert set(records) == {"kernel_k3_torch-eager_cpu1-none_b64_s0_train.json",
                            "kernel_k3_torch-eager_cpu1-none_b64_s1_train.json"}
    assert {r["status"] for r in records.values()} == {"ok"} and not stage.exists()


def test_run_refuses_under_for_groups_that_share_a_folder_name(tmp_path):
    """--under names each group's folder by its last part: speed/torch and layers/torch would share one."""
    result = subprocess.run([sys.executable, "-m", "convbench", "run", "--config", "config/config.yaml",
                             "--under", str(tmp_path / "records")], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert f"--under {tmp_path / 'records'}: the cells' groups" in line and "share a name" in line
    assert not (tmp_path / "records").exists()


# --- convbench run: its output folders --------------------------------------------------------------------------

def run_config(tmp_path) -> Path:
    """A config of one PyTorch speed cell (and its layer cells), timed briefly."""
    config = {k: v for k, v in yaml.safe_load(Path("config/config.yaml").read_text()).items() if k != "scaling"}
    config.update(threads=1, frameworks=["torch"], engines={"torch": ["eager"]},
                  studies={"kernel": {"architectures": ["k3"], "tasks": ["speed"]}})
    config["speed"].update(layers=False, launches=1, warmup=1, min_repeats=3, max_repeats=3, min_seconds=0,
                           gemm_n=64, copy_mib=1)
    (tmp_path / "my.yaml").write_text(yaml.safe_dump(config))
    return tmp_path / "my.yaml"


def convbench_run(tmp_path, *args, **popen):
    return subprocess.run([sys.executable, "-m", "convbench", "run", "--config", str(run_config(tmp_path)), *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, **popen)


def test_a_second_run_on_one_out_folder_is_refused_naming_the_first(tmp_path):
    """Two runs on one --out shared <out>.partial, and the first to finish deleted the other's staged records."""
    command = [sys.executable, "-m", "convbench", "run", "--config", str(run_config(tmp_path)), "--out", "records"]
    first = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "records.partial").exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        line = refusal(subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300))
    finally:
        assert first.wait(timeout=300) == 0, first.stderr.read()
    assert line == (f"convbench: error: records.partial: another convbench run (pid {first.pid}) is writing records "
                    f"here; wait for it to end, or give this run another --out")
    assert [p.name for p in (tmp_path / "records").iterdir()] == ["kernel_k3_torch-eager_cpu1-none_b64_s0_speed.json"]


def test_run_refuses_an_out_folder_without_a_name(tmp_path):
    line = refusal(convbench_run(tmp_path, "--out", "."))
    assert line == ("convbench: error: --out .: name a folder of its own (its records are staged beside it, "
                    "in <name>.partial)")


def test_a_read_only_out_folder_is_refused_before_any_cell_runs(tmp_path):
    """Root writes into a folder of mode 0555: for root the folder is made immutable (chattr +i) instead."""
    records = tmp_path / "records"
    records.mkdir()
    lock = ["chattr", "+i", str(records)] if os.geteuid() == 0 else ["chmod", "0555", str(records)]
    subprocess.run(lock, check=True)
    try:
        line = refusal(convbench_run(tmp_path, "--out", "records"))
    finally:
        subprocess.run(["chattr", "-i", str(records)] if os.geteuid() == 0 else ["chmod", "0755", str(records)])
    assert re.fullmatch(r"convbench: error: records: cannot write records here "
                        r"\((Permission denied|Operation not permitted)\)", line), line
    assert not (tmp_path / "records.partial").exists()  # refused before the first cell ran, nothing left behind


def full_disk(limit: int):
    """In the child: files can grow to `limit` bytes at most, and a write beyond fails as on a full disk (EFBIG,
    the signal that would kill the process ignored)."""
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_full_disk_during_a_run_is_one_line_and_leaves_nothing_half_written(tmp_path):
    result = convbench_run(tmp_path, "--out", "records", preexec_fn=full_disk(2000))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.splitlines()  # stdout: the run's log up to there
    cell = "kernel_k3_torch-eager_cpu1-none_b64_s0_speed"
    assert line == (f"convbench: error: records.partial/{cell}.json: cannot write (File too large); "
                    f"the previous file is kept")
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.name.endswith((".tmp.json", ".json"))]


def test_a_full_disk_during_the_analysis_keeps_the_previous_tables(tmp_path):
    """A truncated tidy.csv beside the previous samples.csv once published seeds 0 and runs 0."""
    from builders.run import write_run

    records = write_run(tmp_path)
    tidy = [sys.executable, "-m", "convbench", "tidy", "--records", str(records), "--out", "generated"]
    assert subprocess.run(tidy, cwd=tmp_path, capture_output=True, timeout=300).returncode == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "generated").iterdir()}
    (records / "speed" / "torch" / next((records / "speed" / "torch").iterdir()).name).unlink()  # a changed run
    limit = min(len(b) for b in before.values()) + 1
    line = refusal(subprocess.run(tidy, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                                  preexec_fn=full_disk(limit)))
    assert line == ("convbench: error: generated/tidy.csv, generated/samples.csv, generated/environment.csv: "
                    "cannot write (File too large); the previous files are kept")
    assert {p.name: p.read_bytes() for p in (tmp_path / "generated").iterdir()} == before
