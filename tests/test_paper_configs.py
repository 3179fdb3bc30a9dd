"""The paper-scale configs run under Snakemake: a job's cells reach `convbench run` in a file (results/<run>/cells/
<job>.json), since Linux refuses one command-line argument over 128 KiB (MAX_ARG_STRLEN) and the paper's jobs
hold more cells than that. Their dry runs plan every job with a short command; a few cells of config/paper.yaml run."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from convbench import config as config_module
from convbench.cells import groups

ROOT = Path(__file__).resolve().parents[1]
MAX_ARG_STRLEN = 128 * 1024


def workflow_copy(work: Path, config: dict | None = None, name: str = "paper.yaml") -> Path:
    """The workflow in `work`, with config/<name> (the repository's, or `config`); returns the config file."""
    for part in ("Snakefile", "workflow", "paper", "profiles", "envs", "config"):
        (shutil.copytree if (ROOT / part).is_dir() else shutil.copy)(ROOT / part, work / part)
    if config is not None:
        (work / "config" / name).write_text(yaml.safe_dump(config))
    return work / "config" / name


def snakemake(work: Path, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=work, capture_output=True, text=True,
                          timeout=timeout)


def gpu_node(work: Path) -> dict:
    """What a GPU node's dry run sees, on this machine: an nvidia-smi that lists 8 GPUs (Snakemake refuses a config
    the machine cannot run, even in a dry run) and Snakemake's own Python first on PATH."""
    (work / "bin").mkdir()
    (work / "bin" / "nvidia-smi").write_text("#!/bin/sh\n" + "".join(f"echo 'GPU {i}: NVIDIA H200'\n" for i in range(8)))
    (work / "bin" / "nvidia-smi").chmod(0o755)
    return {**os.environ, "PATH": f"{work / 'bin'}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.parametrize("name", ["paper.yaml", "paper-gpu.yaml"])
def test_paper_config_dry_run_hands_each_job_its_cells_in_a_file(tmp_path, name):
    """Every job's command is short and names its cells file, which holds exactly the cells of the job's groups
    (the GPU config too, planned as on a GPU node with this machine's cores: a dry run writes the files, runs
    nothing)."""
    config = config_module.read(ROOT / "config" / name)
    if config["device"] == "cuda":
        config["threads"] = min(config["threads"], config_module.cores())
    configfile = workflow_copy(tmp_path, config, name)
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--cores", "2", "--configfile",
                             str(configfile)], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                            env=gpu_node(tmp_path) if config["device"] == "cuda" else None)
    assert result.returncode == 0, result.stderr[-3000:]
    commands = [line for line in result.stdout.splitlines() if "python -m convbench run" in line]
    assert commands and max(len(c.encode()) for c in commands) < 4096
    cells = config_module.check(config, name)
    by_group = groups(cells)
    run = yaml.safe_load(configfile.read_text())["run"]
    handed = []
    for command in commands:
        path = re.search(r"--cells-json '?(\S+?\.json)'?( |$)", command).group(1)
        assert path.startswith(f"results/{run}/cells/")
        handed += json.loads((tmp_path / path).read_text())
    assert sorted(c["arch"]["name"] + c["framework"] + str(c["seed"]) + c["task"] for c in handed) == sorted(
        c.arch.name + c.framework + str(c.seed) + c.task for group in by_group.values() for c in group)
    # what the old argument would have been for one framework's train cells (one job each, before train jobs were
    # split per network): over Linux's limit in the CPU paper config
    if name == "paper.yaml":
        torch_train = [c.to_dict() for group, members in by_group.items() if group.startswith("train/torch/")
                       for c in members]
        assert len(json.dumps(torch_train)) > MAX_ARG_STRLEN


@pytest.mark.slow
def test_a_few_cells_of_the_paper_config_run_through_snakemake(tmp_path):
    """config/paper.yaml cut to two networks of each accuracy study, one seed, one epoch on each of its data sets
    (the planted task drawn small): Snakemake runs their train job, which reads its cells from the file."""
    config = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    config["run"] = "paper-few"
    for study in config["studies"].values():
        study["architectures"] = study["architectures"][:2]
        study.pop("train_fractions", None)
        study["datasets"] = [d["dataset"] if isinstance(d, dict) else d for d in study.get("datasets", [])] or None
        if not study["datasets"]:
            del study["datasets"]
        study.setdefault("train", {}).update(seeds=[0])
        if "data" in study:
            study["data"].update(train_size=128, test_size=64)
    config["studies"] = {k: v for k, v in config["studies"].items() if k in ("kernel", "activation")}
    config["train"].update(epochs=1, min_epochs=1, seeds=[0])
    config["data"].update(train_size=128, test_size=64)
    configfile = workflow_copy(tmp_path, config, "paper-few.yaml")
    expected = [c for c in config_module.check(config, "paper-few") if c.group.startswith("train/torch/")]
    target = sorted({f"results/paper-few/records/{c.group}" for c in expected})  # one job per network and data
    result = snakemake(tmp_path, *target, "--cores", "2", "--configfile", str(configfile))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    records = [json.loads(p.read_text()) for folder in target for p in sorted((tmp_path / folder).glob("*.json"))]
    assert sorted(r["cell_id"] for r in records) == sorted(c.id for c in expected) and len(expected) >= 4
    assert all(r["status"] == "ok" for r in records), [r["error"] for r in records if r["status"] != "ok"]
    # the cells file stands for the cells: the same cells, nothing to rerun
    again = snakemake(tmp_path, *target, "-n", "--cores", "2", "--configfile", str(configfile))
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-2000:]


def test_a_study_trains_on_several_data_sets_each_with_its_own_fractions():
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config["studies"] = {"activation": {"architectures": ["relu"], "tasks": ["train"], "train": {"repeats": 0},
                                        "datasets": ["planted", {"dataset": "mnist5k", "train_fractions": [0.5, 1.0]}]}}
    cells = [c for c in config_module.check(config) if c.task == "train"]
    found = {(c.settings["data"]["dataset"], c.train_fraction, c.arch.num_classes) for c in cells}
    assert found == {("planted", 1.0, 2), ("mnist5k", 0.5, 10), ("mnist5k", 1.0, 10)}
    assert all(f"-{c.settings['data']['dataset']}_" in c.id for c in cells)
    assert len({c.id for c in cells}) == len(cells) == 3 * len(config["train"]["seeds"])
    # a data set's own training settings over the study's: a longer cap on one data set, the other's untouched
    config["studies"]["activation"]["datasets"][0] = {"dataset": "planted", "train": {"epochs": 80}}
    caps = {(c.settings["data"]["dataset"], c.train_fraction): c.settings["epochs"]
            for c in config_module.check(config) if c.task == "train"}
    cap = config["train"]["epochs"]
    assert caps == {("planted", 1.0): 80, ("mnist5k", 0.5): 2 * cap, ("mnist5k", 1.0): cap}
    config["studies"]["activation"]["datasets"][0] = {"dataset": "planted", "train": {"epoch": 80}}
    with pytest.raises(config_module.ConfigError, match=r"studies\.activation\.datasets"):
        config_module.check(config)
    config["studies"]["activation"]["datasets"] = ["planted", "imagenet"]
    with pytest.raises(config_module.ConfigError, match=r"studies\.activation\.datasets"):
        config_module.check(config)


def test_the_paper_config_asks_its_questions_with_twenty_seeds_on_both_data_sets():
    """Q1 as VGG asks it (a 1x1 stem, then C->C: one 5x5 against two 3x3, one 7x7 against three 3x3) at the same C
    and at equal parameters (within 2 %); Q2 (maxout k = 2, 3, 4 at equal parameters, k = 2 at equal filters and
    width, against ReLU) at three training fractions; every accuracy comparison on 20 seeds of both data sets."""
    from convbench.spec import field, param_count

    cells = config_module.check(config_module.read(ROOT / "config/paper.yaml"), "paper.yaml")
    trained = [c for c in cells if c.task == "train" and c.settings["role"] == "replicate"]
    specs = {(c.arch.name, c.arch.num_classes): c.arch for c in trained}
    for single, stack, wide in (("k5-cc-w12", "k3-stack2-cc-w12", "k3-stack2-cc-w14"),
                                ("k7-cc-w12", "k3-stack3-cc-w12", "k3-stack3-cc-w16")):
        for classes in (2, 10):
            one, same_c, equal = (specs[name, classes] for name in (single, stack, wide))
            assert field(one) == field(same_c) == field(equal)
            assert [b.width for b in one.blocks] == [b.width for b in same_c.blocks]  # C->C after the 1x1 stem
            assert one.blocks[0].kernel == 1 and all(b.kernel == 3 for b in same_c.blocks[1:])
            assert param_count(same_c) < param_count(one)
            assert abs(param_count(equal) / param_count(one) - 1) <= 0.02
    for study in ("kernel", "activation"):
        runs = {}
        for c in trained:
            if c.study == study:
                runs.setdefault((c.arch.name, c.settings["data"]["dataset"], c.train_fraction), set()).add(c.seed)
        assert {dataset for _, dataset, _ in runs} == {"planted", "mnist5k"}
        assert min(len(seeds) for seeds in runs.values()) >= 20
    fractions = {c.train_fraction for c in trained if c.study == "activation"}
    assert len(fractions) >= 3
    maxout = {c.arch.name for c in trained if c.study == "activation"}
    assert {"relu", "maxout2-eqparams", "maxout3-eqparams", "maxout4-eqparams", "maxout2-eqfilters",
            "maxout2-eqwidth"} <= maxout


def test_committed_records_are_not_run_again_and_missing_ones_are(tmp_path):
    """make paper-full: records put where config/paper.yaml's run writes them (as the Makefile copies the committed
    ones, results/reference/cpu-paper) take their jobs out of the plan; a job whose records are missing stays in it."""
    configfile = workflow_copy(tmp_path)
    grouped = groups(config_module.check(config_module.read(configfile), "paper.yaml"))
    have, missing = sorted(g for g in grouped if g.startswith("train/"))[:2]
    folder = tmp_path / "results/paper/records" / have
    folder.mkdir(parents=True)
    for cell in grouped[have]:
        (folder / f"{cell.id}.json").write_text("{}")  # the plan reads no record
    result = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(configfile), "--until", "train")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"output: results/paper/records/{missing}\n" in result.stdout
    assert f"output: results/paper/records/{have}\n" not in result.stdout
