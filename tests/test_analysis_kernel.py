"""The kernel study: per-cell values, single kernel against stacked convolutions (verdicts), frameworks in eager mode,
its figures and tables. Fixture records go through write_tidy and read_run, as in the pipeline."""
import json
import zlib

import numpy as np
import pytest

from convbench import spec
from convbench.analysis import analyse_study, read_run, write_tidy
from convbench.analysis.formatting import ms, percent, setup_label
from convbench.analysis.kernel import STUDY, tables, values
from convbench.analysis.latex import read_macros

ARCHS = {"k3": (3, 1), "k5": (5, 1), "k7": (7, 1), "k3-stack2": (3, 2), "k3-stack3": (3, 3)}  # (kernel, depth)
PAIRS = {("k5", "k3-stack2"), ("k7", "k3-stack3")}
# Test accuracy per arch; train accuracy is this plus a gap that grows with the parameters.
ACCURACY = {"k3": 0.951, "k5": 0.962, "k7": 0.958, "k3-stack2": 0.966, "k3-stack3": 0.969}
SLOWER = {"torch": 1.0, "tensorflow": 1.5}  # TensorFlow's forward and backward take 1.5x as long


def summary(median, rng, n=20):
    samples = list(median * (1 + 0.04 * rng.standard_normal(n)))
    q1, q3 = np.percentile(samples, [25, 75])
    return {"median": float(np.median(samples)), "iqr": float(q3 - q1), "cv": float(np.std(samples) / np.mean(samples)),
            "n": n, "samples": samples}


def make_record(task, framework, arch, seed=0, slowdown=1.0, accuracy=None, engine="eager", study="kernel"):
    """A realistic record: backward time proportional to the arch's FLOPs (times slowdown)."""
    image_size, in_channels = (16, 3) if task == "speed" else (8, 1)
    kernel, depth = ARCHS[arch]
    archd = {"name": arch, "in_channels": in_channels, "num_classes": 10,
             "blocks": [{"width": w, "kernel": kernel, "depth": depth, "activation": "relu", "pieces": 1, "pool": 2}
                        for w in (32, 64)]}
    s = spec.ArchSpec.from_dict(arch, archd, in_channels, 10)
    params, flops = spec.param_count(s), spec.forward_flops(s, image_size)
    cell_id = f"{study}_{arch}_{framework}-{engine}_cpu1-none_b64_s{seed}_{task}"
    cell = {"study": study, "task": task, "framework": framework, "engine": engine, "device": "cpu", "devices": 1,
            "parallelism": "none", "batch_size": 64, "image_size": image_size, "seed": seed, "threads": 2,
            "arch": archd, "settings": {"warmup": 3, "min_repeats": 5, "max_repeats": 30} if task == "speed"
            else {"epochs": 3, "lr": 0.05, "momentum": 0.9, "dataset": "digits"}}
    record = {"schema_version": 1, "cell_id": cell_id, "cell": cell, "status": "ok", "error": None,
              "counts": {"params": params, "params_framework": params, "flops_forward": flops},
              "process": {"import_s": 4.3}, "wall_s": 3.2, "started": "2026-11-28T23:59:00+00:00",
              "environment": {"python": "3.11.7", "versions": {framework: "1.0"}, "device_model": "cpu"}}
    rng = np.random.default_rng(zlib.crc32(cell_id.encode()))
    if task == "speed":
        forward = flops * 64 / 20e9 * SLOWER[framework]
        phases = {"forward": summary(forward, rng), "backward": summary(2 * forward * slowdown, rng),
                  "optimizer": summary(0.002, rng)}
        phases["total"] = summary(sum(p["median"] for p in phases.values()), rng)
        step = summary(phases["total"]["median"] * 1.02, rng)
        record["timings"] = {"first_step": 0.21, "phases": phases, "step": step}
    else:
        test = ACCURACY[arch] if accuracy is None else accuracy
        train = min(1.0, test + params / 2e6)
        epochs = [{"epoch": e, "train_loss": 1.0 / e, "train_accuracy": train * e / 3, "test_loss": 1.1 / e,
                   "test_accuracy": test * e / 3, "seconds": 1.5 + 0.1 * e} for e in (1, 2, 3)]
        record["training"] = {"epochs": epochs, "dataset": {"name": "digits", "train_size": 1347, "test_size": 450}}
    return record


def kernel_records(slowdown=None, accuracy=None, frameworks=("torch", "tensorflow")):
    return [make_record(task, framework, arch, slowdown=(slowdown or {}).get(arch, 1.0),
                        accuracy=(accuracy or {}).get(arch))
            for arch in ARCHS for framework in frameworks for task in ("speed", "train")]


def published(tmp_path, records):
    """The run as every study reads it: records -> tidy.csv -> read back."""
    folder = tmp_path / f"records{len(list(tmp_path.glob('records*')))}"
    folder.mkdir()
    for r in records:
        (folder / f"{r['cell_id']}.json").write_text(json.dumps(r))
    return read_run(write_tidy(folder, folder / "generated"), reference=None)


def verdicts(run):
    return {v.key: v for v in values.verdicts(run)}


def median(run, arch, phase="backward", framework="torch", metric="time"):
    df = run.tidy
    rows = df[(df.arch == arch) & (df.metric == metric) & (df.phase == phase) & (df.framework == framework)]
    return rows.value.median()


@pytest.fixture
def run(tmp_path):
    return published(tmp_path, kernel_records())


def test_pairs_are_a_single_kernel_against_the_stack_of_its_receptive_field(run):
    assert set(values.stack_pairs(run.study("kernel"))) == PAIRS
    found = values.comparisons(run)
    setups = ("torch-eager", "tensorflow-eager")
    assert {(p.slug, p.a, p.b) for p in found} == {(s, a, b) for s in setups for a, b in PAIRS}


def test_time_ratios_are_verdicts_on_the_record_medians(run):
    v = verdicts(run)["kernel/torch-eager/k5-over-k3-stack2/backward-ratio"]
    assert v.estimate == pytest.approx(median(run, "k5") / median(run, "k3-stack2"))
    assert v.lo < v.estimate < v.hi and v.unit == "ratio"
    assert v.word == "faster than"  # FLOP-proportional times: one 5x5 does fewer FLOPs than two 3x3
    numbers = values.values(run)
    assert float(numbers["kernel/tensorflow-eager/k7/step-ms"]) == pytest.approx(
        median(run, "k7", "step", "tensorflow") * 1e3, rel=0.01)
    params = {a: run.tidy[run.tidy.arch == a].params.iloc[0] for a in ("k5", "k3-stack2")}
    assert float(numbers["kernel/torch-eager/k5-over-k3-stack2/params-ratio"]) == pytest.approx(
        params["k5"] / params["k3-stack2"], abs=0.005)
    test = {a: median(run, a, "final", metric="test_accuracy") for a in ("k7", "k3-stack3")}
    assert numbers["kernel/torch-eager/k7-vs-k3-stack3/test-accuracy-diff"] == percent(test["k7"] - test["k3-stack3"])
    assert numbers["kernel/torch-eager/k5/test-accuracy"] == percent(ACCURACY["k5"])


def test_directions_follow_the_data(tmp_path):
    a = published(tmp_path, kernel_records())
    b = published(tmp_path, kernel_records(slowdown={"k5": 3.0, "k7": 3.0}, accuracy={"k5": 0.99, "k7": 0.99}))
    key = "kernel/torch-eager/k5-over-k3-stack2/backward-ratio"
    assert verdicts(a)[key].word == "faster than" and verdicts(b)[key].word == "slower than"
    assert verdicts(a)[key].estimate < 1 < verdicts(b)[key].estimate
    assert verdicts(a)["kernel/stack/backward-ratio"].word == "faster than"
    assert verdicts(b)["kernel/stack/backward-ratio"].word == "slower than"
    assert verdicts(a)["kernel/stack/backward-ratio"].n == 4
    va, vb = values.values(a), values.values(b)
    assert (va["kernel/stack/single-higher"], va["kernel/stack/single-lower"]) == ("0", "4")
    assert (vb["kernel/stack/single-higher"], vb["kernel/stack/single-lower"]) == ("4", "0")
    assert va["kernel/stack/accuracy-pairs"] == "4" and va["kernel/stack/timed"] == "1"


def test_pairs_that_disagree_are_mixed(tmp_path):
    run = published(tmp_path, kernel_records(slowdown={"k5": 3.0}))  # k5 slower than its stack, k7 faster
    v = verdicts(run)["kernel/stack/backward-ratio"]
    assert v.word == values.MIXED and v.lo < 1 < v.hi


def test_frameworks_in_eager_mode(run):
    v = verdicts(run)["frameworks/eager/backward-ratio"]
    assert (v.subject, v.reference, v.n) == ("tensorflow-eager", "torch-eager", len(ARCHS))
    assert v.estimate == pytest.approx(1.5, rel=0.05) and v.word == "slower than"
    numbers = values.values(run)
    assert numbers["frameworks/eager"] == "1"
    assert numbers["frameworks/eager/backward-slow"] == setup_label("tensorflow", "eager")
    assert float(numbers["frameworks/tensorflow-eager-over-torch-eager/backward-ratio"]) == pytest.approx(1.5, rel=0.05)


def test_new_engines_flow_through(tmp_path):
    records = [make_record("speed", "torch", arch, slowdown=slowdown, engine=engine)
               for engine, slowdown in [("eager", 1.0), ("compile", 0.5)] for arch in ("k3", "k5", "k3-stack2")]
    run = published(tmp_path, records)
    assert "kernel/torch-compile/k5-over-k3-stack2/backward-ratio" in verdicts(run)
    numbers = values.values(run)
    assert float(numbers["frameworks/torch-compile-over-torch-eager/backward-ratio"]) == pytest.approx(0.5, abs=0.05)
    assert numbers["frameworks/eager"] == "0"  # one eager setup: nothing to compare
    speed = tables.speed(run)
    assert "PyTorch compile" in speed and "PyTorch eager" in speed


def test_analyse_writes_figures_tables_and_macros(run, tmp_path):
    out = analyse_study(STUDY, run, tmp_path / "kernel")
    for figure in STUDY.figures:
        assert (out / "figures" / f"{figure.name}.pdf").read_bytes().startswith(b"%PDF")
    speed = (out / "tables" / "speed.tex").read_text()
    rows = run.tidy[(run.tidy.arch == "k5") & (run.tidy.phase == "backward") & (run.tidy.framework == "torch")]
    assert ms(rows.value.iloc[0], rows.iqr.iloc[0]) in speed and "k3-stack2" in speed and r"\bottomrule" in speed
    assert percent(ACCURACY["k5"]) in (out / "tables" / "accuracy.tex").read_text()
    assert r"\texttt{k3-stack3}" in (out / "tables" / "kernel_pairs.tex").read_text()
    macros = read_macros(out / "macros.tex")
    v = verdicts(run)["kernel/torch-eager/k5-over-k3-stack2/backward-ratio"]
    assert macros["kernel/ran"] == "1" and macros[v.key] == f"{v.estimate:.2f}" and macros[f"{v.key}-word"] == v.word
    assert macros[f"{v.key}-lo"] == f"{v.lo:.2f}" and macros[f"{v.key}-hi"] == f"{v.hi:.2f}"
    assert json.loads((out / "verdicts.json").read_text())


def test_a_run_without_kernel_pairs_still_analyses(tmp_path):
    """One network, no training: placeholders instead of figures, flags at 0 for the text's fallbacks."""
    run = published(tmp_path, [make_record("speed", "torch", "k5")])
    out = analyse_study(STUDY, run, tmp_path / "kernel")
    assert all((out / "figures" / f"{f.name}.pdf").read_bytes().startswith(b"%PDF") for f in STUDY.figures)
    macros = read_macros(out / "macros.tex")
    assert macros["kernel/ran"] == "1"
    assert (macros["kernel/stack/timed"], macros["kernel/stack/trained"], macros["frameworks/eager"]) == ("0", "0", "0")
    assert "No single kernel" in (out / "tables" / "kernel_pairs.tex").read_text()
    assert "no training cells" in (out / "tables" / "accuracy.tex").read_text()


def test_a_run_where_every_kernel_cell_failed(tmp_path):
    records = []
    for arch in ["k3", "k5"]:
        r = make_record("speed", "torch", arch)
        r.update(status="failed", error="RuntimeError: boom")
        del r["timings"]
        records.append(r)
    run = published(tmp_path, records)
    assert not STUDY.ran(run) and values.verdicts(run) == []
    out = analyse_study(STUDY, run, tmp_path / "kernel")
    assert read_macros(out / "macros.tex")["kernel/ran"] == "0"
    assert "no timed cells" in (out / "tables" / "speed.tex").read_text()
