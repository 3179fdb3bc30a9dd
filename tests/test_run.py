import json
import os
import stat

import pytest
import yaml
from conftest import new_record

from convbench import config, run
from convbench.records import write_record
from convbench.run import run_cells, run_group

with open("config/config.yaml") as f:
    DEFAULT = yaml.safe_load(f)
WITHOUT_SCALING = {k: v for k, v in DEFAULT.items() if k != "scaling"}
WITHOUT_SCALING["data"] = {**DEFAULT["data"], "dataset": "digits"}  # a real data set, upsampled to speed.image_size
QUICK = {"min_seconds": 0, "launches": 1}  # exactly min_repeats samples, in this process


def tiny_config(**train):
    tiny = {
        **WITHOUT_SCALING,
        "frameworks": ["torch", "tensorflow"],
        # train cells on the timed cells' threads: this one process runs both, and TensorFlow sets its threads once
        "train": {**DEFAULT["train"], "epochs": 1, "seeds": [0], "optimizer": "sgd", "lr": 0.02,
                  "threads": DEFAULT["threads"], **train},
        # 8x8: digits at their own size (trained at the timed size)
        "speed": {**DEFAULT["speed"], "batch_size": 8, "image_size": 8, "warmup": 1, "min_repeats": 3, "max_repeats": 3,
                  **QUICK},
        "architectures": {"small": {"blocks": [{"width": 8}, {"width": 8, "activation": "maxout", "pieces": 2}]}},
        "studies": {"tiny": {"architectures": ["small"], "tasks": ["train", "speed"]}},
    }
    return config.check(tiny)


def test_speed_record_holds_samples_counts_and_environment(tmp_path):
    cell = next(c for c in tiny_config() if c.group == "speed/torch")
    [record] = run_cells([cell], tmp_path, log=lambda _: None)
    saved = json.loads((tmp_path / f"{cell.id}.json").read_text())
    assert saved == json.loads(json.dumps(record)) and saved["status"] == "ok"
    assert saved["counts"]["params"] == saved["counts"]["params_framework"]
    for phase in ("forward", "backward", "optimizer", "total"):
        timing = saved["timings"]["phases"][phase]
        assert len(timing["samples"]) == 3 and timing["median"] > 0
    assert saved["timings"]["step"]["n"] == 3
    env = saved["environment"]
    assert env["versions"]["torch"].startswith("2.") and env["threads"]["intra_op"] == cell.threads
    assert env["cpu_model"] and env["git_commit"] and env["flags"]["layout"] == "NCHW"


def test_a_failing_cell_becomes_a_failed_record_and_the_run_goes_on(tmp_path):
    cell = next(c for c in tiny_config() if c.group == "speed/torch")
    broken = type(cell)(**{**cell.__dict__, "device": "cuda"})  # no GPU here, or a different id on one
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU, so device 'cuda' does not fail")
    records = run_cells([broken, cell], tmp_path, log=lambda _: None)
    assert [r["status"] for r in records] == ["failed", "ok"]
    failed = json.loads((tmp_path / f"{broken.id}.json").read_text())
    assert "torch.cuda.is_available() is False" in failed["error"]
    assert "timings" not in failed and failed["cell"]["device"] == "cuda"


def test_a_failed_cell_keeps_the_ok_record_unless_asked(tmp_path):
    cell = next(c for c in tiny_config() if c.group == "speed/torch")
    broken = type(cell)(**{**cell.__dict__, "device": "cuda"})
    if config.gpus():
        pytest.skip("this machine has a GPU, so device 'cuda' does not fail")
    # an ok record of this very cell under an older schema: not finished, so run again; its failure goes beside it
    earlier = new_record(broken, schema_version=0)
    write_record(tmp_path / f"{broken.id}.json", earlier)
    run_group([broken], tmp_path, log=lambda _: None)
    assert json.loads((tmp_path / f"{broken.id}.json").read_text()) == json.loads(json.dumps(earlier))
    assert json.loads((tmp_path / f"{broken.id}.json.failed").read_text())["status"] == "failed"
    run_group([broken], tmp_path, overwrite_ok=True, log=lambda _: None)
    assert json.loads((tmp_path / f"{broken.id}.json").read_text())["status"] == "failed"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{broken.id}.json"]


def test_an_ok_record_of_other_parameters_is_never_left_as_the_cells_result(tmp_path):
    """The config changed (warmup 5 -> 1) and the rerun of the changed cell failed: the old ok record, measured with
    other parameters, moves aside to .stale instead of being published as this cell's result."""
    cell = next(c for c in tiny_config() if c.group == "speed/torch")
    broken = type(cell)(**{**cell.__dict__, "device": "cuda"})
    if config.gpus():
        pytest.skip("this machine has a GPU, so device 'cuda' does not fail")
    earlier = new_record(broken, cell={**broken.to_dict(), "settings": {**broken.settings, "warmup": 5}})
    write_record(tmp_path / f"{broken.id}.json", earlier)
    log = []
    run_group([broken], tmp_path, log=log.append)
    assert json.loads((tmp_path / f"{broken.id}.json").read_text())["status"] == "failed"
    assert json.loads((tmp_path / f"{broken.id}.json.stale").read_text()) == json.loads(json.dumps(earlier))
    assert any("an ok record of other parameters was there" in line for line in log)


def test_a_rerun_skips_the_cells_an_interrupted_run_finished(tmp_path):
    two = {**WITHOUT_SCALING, "frameworks": ["torch"],
           "speed": {**DEFAULT["speed"], "batch_size": 8, "warmup": 1, "min_repeats": 3, "max_repeats": 3, **QUICK},
           "architectures": {"a": {"blocks": [{"width": 8}]}, "b": {"blocks": [{"width": 16}]}},
           "studies": {"tiny": {"architectures": ["a", "b"], "tasks": ["speed"]}}}
    first, second = [c for c in config.check(two) if c.group == "speed/torch"]
    out, stage = tmp_path / "records", tmp_path / "records.partial"
    run_cells([first], stage, log=lambda _: None)  # what a job killed during its second cell leaves
    staged = (stage / f"{first.id}.json").read_text()
    log = []
    run_group([first, second], out, log=log.append)
    assert (out / f"{first.id}.json").read_text() == staged
    assert json.loads((out / f"{second.id}.json").read_text())["status"] == "ok"
    assert not stage.exists() and f"{first.id}: not run again" in log[0]
    done = {p.name: p.read_text() for p in out.iterdir()}
    log.clear()
    run_group([first, second], out, log=log.append)  # everything is there: nothing runs, nothing changes
    assert {p.name: p.read_text() for p in out.iterdir()} == done and len(log) == 2


def test_both_frameworks_train_to_the_same_losses(tmp_path):
    train_cells = [c for c in tiny_config(lr=0.05, epochs=2) if c.task == "train"]
    results = {}
    for cell in train_cells:
        [record] = run_cells([cell], tmp_path / cell.framework, log=lambda _: None)
        assert record["status"] == "ok", record["error"]
        results[cell.framework] = record["training"]["epochs"][-1]
    assert results["torch"]["train_loss"] == pytest.approx(results["tensorflow"]["train_loss"], rel=1e-3)
    assert results["torch"]["test_accuracy"] == pytest.approx(results["tensorflow"]["test_accuracy"], abs=0.01)
    assert 0.2 < results["torch"]["test_accuracy"] <= 1.0  # two epochs on digits learns well above chance


def test_write_record_is_atomic_and_keeps_the_old_file_on_error(tmp_path):
    path = tmp_path / "cell.json"
    write_record(path, {"status": "ok"})
    with pytest.raises(TypeError):
        write_record(path, {"status": "ok", "bad": object()})
    assert json.loads(path.read_text())["status"] == "ok"
    assert [p.name for p in tmp_path.iterdir()] == ["cell.json"]


def test_a_learned_network_is_shrunk_checked_and_timed(tmp_path):
    tiny = {**WITHOUT_SCALING, "frameworks": ["torch"],
            "speed": {**DEFAULT["speed"], "warmup": 1, "min_repeats": 3, "max_repeats": 3, **QUICK},
            "architectures": {"learns": {"blocks": [{"width": 8, "kernel": 5, "init_radius": 1.0, "radius_penalty": 1.0},
                                                    {"width": 8, "gates": True, "init_log_alpha": 0.5}]}},
            "studies": {"learned": {"architectures": ["learns"], "tasks": ["train"],
                                    "train": {"optimizer": "adam", "lr": 0.01, "epochs": 2, "seeds": [0]}}}}
    [cell] = config.check(tiny)
    [record] = run_cells([cell], tmp_path, log=lambda _: None)
    assert record["status"] == "ok", record["error"]
    epochs, result = record["training"]["epochs"], record["learned"]
    # two epochs do not fit the data: the first phase holds the radius at its start, no penalty yet
    assert record["training"]["learning_started_epoch"] is None
    assert epochs[-1]["learned"]["blocks.0.radius"] == pytest.approx(1.0)
    assert result["kept"][0]["kernel"] in (3, 5) and result["kept"][1] == {"kernel": 3, "maps": result["kept"][1]["maps"]}
    assert result["max_logit_difference"] < 1e-4
    assert result["test_accuracy"] == pytest.approx(epochs[-1]["test_accuracy"], abs=1 / record["training"]["dataset"]["test_size"])
    # timed in interleaved rounds, 3 samples each
    assert result["step"]["shrunk"]["n"] == 3 * run.SHRUNK_ROUNDS and result["params"] <= record["counts"]["params"]
    assert [list(r) for r in result["step_rounds"]] == [["learned", "shrunk"], ["shrunk", "learned"]] * 2


def test_a_dead_launcher_leaves_a_failed_record_per_cell(tmp_path, monkeypatch):
    from convbench import run

    scaling = {**DEFAULT, "scaling": {**DEFAULT["scaling"], "frameworks": ["torch"], "architectures": ["k3"],
                                      "devices": [2], "parallelism": ["data"], "scaling": ["strong"], "straggler_ms": []}}
    cells = [c for c in config.check(scaling) if c.task == "scaling"]
    assert [c.id for c in cells] == ["scaling_k3_torch-eager_cpu2-data-strong_b64_s0_scaling"]
    from convbench.parallel import launch

    monkeypatch.setattr(launch.sys, "executable", "false")  # a launcher that dies at once, as a crashed one would
    run.run_scaling(cells, tmp_path, log=lambda _: None)
    record = json.loads((tmp_path / f"{cells[0].id}.json").read_text())
    assert record["status"] == "failed" and "the launcher exited with status 1" in record["error"]


@pytest.mark.parametrize("framework, lr", [("torch", 1.0e30), ("tensorflow", 1.0e308)])
def test_a_diverged_training_is_a_failed_record(tmp_path, framework, lr):
    """Adam at a huge lr trains to a NaN loss: a failed record that says so, not an ok one."""
    cell = next(c for c in tiny_config(lr=lr, optimizer="adam") if c.task == "train" and c.framework == framework)
    [record] = run_cells([cell], tmp_path, log=lambda _: None)
    assert record["status"] == "failed"
    assert record["error"].strip().splitlines()[-1].startswith("FloatingPointError: training diverged: the train loss")


@pytest.mark.parametrize("optimizer, timed", [("adam", "Adam"), ("sgd", "SGD")])
def test_speed_cells_time_the_training_optimizer(tmp_path, optimizer, timed):
    cell = next(c for c in tiny_config(optimizer=optimizer) if c.group == "speed/torch")
    assert cell.settings["optimizer"] == optimizer
    [record] = run_cells([cell], tmp_path, log=lambda _: None)
    assert record["status"] == "ok", record["error"]
    assert record["engine"]["optimizer"].startswith(f"torch.optim.{timed} ")


def test_records_are_readable_by_the_group_and_others(tmp_path):
    """Records on a shared cluster file system: 0666 less the umask, as open() makes files (mkstemp's are 0600)."""
    umask = os.umask(0o022)
    try:
        write_record(tmp_path / "cell.json", {"status": "ok"})
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "cell.json").stat().st_mode) == 0o644
