"""The engines study: bootstrap claim, roofline, estimated backward split, layer-wise and fairness tables.

Fixture records follow the measuring side's format: engines-study speed cells with engine info, phase method, step
FLOPs and bytes, the process's ceilings and noisy flags; layer-wise cells (one convolution each); a failed XLA cell.
"""
import importlib.util
import json
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from convbench import spec
from convbench.analysis import analyse, claim, engines, figures, layers, macros, tables, tidy

_spec = importlib.util.spec_from_file_location("analysis_fixtures", Path(__file__).with_name("test_analysis.py"))
base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(base)

ENGINES = {"torch": ["eager", "torchscript", "compile"], "tensorflow": ["eager", "function", "xla"]}
ARCHS = ["k3", "k5", "k7"]
# Backward time relative to PyTorch eager's, per setup; tests override some.
BACKWARD = {"torch-eager": 1.0, "torch-torchscript": 1.0, "torch-compile": 0.8,
            "tensorflow-eager": 1.6, "tensorflow-function": 1.2, "tensorflow-xla": 0.9}
CEILINGS = {"torch": (108e9, 12e9), "tensorflow": (96e9, 11e9)}  # GEMM FLOP/s, copy bytes/s
LAYER_RATE = {"torch": 60e9, "tensorflow": 50e9}  # forward convolution FLOP/s
BACKWARD_HALVES = {"torch": (1.2, 1.4), "tensorflow": (1.5, 2.0)}  # backward-input, -weight over forward
MAX_IQR_RATIO = 0.1
FAILED_ENGINE = "engines_k7_tensorflow-xla_cpu1-none_b64_s0_speed"
NOISY = ("engines_k5_torch-compile_cpu1-none_b64_s0_speed", "backward")
WARNING = ("`torch.jit.script` is deprecated. Please switch to `torch.compile` or `torch.export`; TorchScript "
           "will not receive new features.\n  warnings.warn(")


def summary(samples):
    samples = [float(x) for x in samples]
    q1, q3 = np.percentile(samples, [25, 75])
    median = float(np.median(samples))
    return {"median": median, "iqr": float(q3 - q1), "cv": float(np.std(samples) / abs(np.mean(samples))),
            "n": len(samples), "samples": samples, "noisy": bool((q3 - q1) / abs(median) > MAX_IQR_RATIO)}


def ceilings(framework, rng):
    gemm, bandwidth = CEILINGS[framework]
    return {"gemm_flops": summary(gemm * (1 + 0.01 * rng.standard_normal(7))),
            "memory_bandwidth": summary(bandwidth * (1 + 0.01 * rng.standard_normal(7))),
            "gemm_n": 2048, "copy_bytes": 256 * 2**20}


def flags(framework):
    if framework == "torch":
        return {"layout": "NCHW", "mkldnn": True, "deterministic": False}
    return {"layout": "NHWC", "xla_auto_jit": False, "onednn": True}


def step_bytes(archd, image_size, batch):
    """Activations in and out of each convolution and its weights, read and written about three times a step."""
    s = spec.ArchSpec.from_dict(archd["name"], archd, archd["in_channels"])
    size = {0: image_size, 1: image_size // 2}
    return 3 * 4 * sum(batch * (c.in_channels + c.out_channels) * size[c.block] ** 2 + c.in_channels * c.out_channels
                       * c.kernel**2 for c in s.convs())


def engine_record(framework, engine, arch, backward=None, n=30):
    """A speed cell of the engines study; TF graph engines derive their phases from three programs per repeat."""
    record = base.make_record("engines", "speed", framework, arch)
    setup = f"{framework}-{engine}"
    cell_id = record["cell_id"].replace(f"{framework}-eager", setup)
    record.update(cell_id=cell_id)
    record["cell"]["engine"] = engine
    record["cell"]["settings"]["max_iqr_ratio"] = MAX_IQR_RATIO
    rng = np.random.default_rng(zlib.crc32(cell_id.encode()))
    flops = record["counts"]["flops_forward"]
    record["counts"] |= {"flops_step": 3 * flops * 64, "bytes_step": step_bytes(record["cell"]["arch"], 16, 64)}
    forward = flops * 64 / 20e9 * (1.0 if framework == "torch" else 1.5)
    back = 2 * flops * 64 / 20e9 * (BACKWARD | (backward or {}))[setup]
    noise = 0.2 if (cell_id, "backward") == NOISY else 0.02
    fwd = forward * (1 + 0.02 * rng.standard_normal(n))
    bwd = back * (1 + noise * rng.standard_normal(n))
    opt = 0.0005 * (1 + 0.04 * rng.standard_normal(n))
    derived = framework == "tensorflow" and engine != "eager"
    if derived:  # forward+loss, forward+backward and whole-step programs, each with its own noise
        fwd_bwd = (forward + back) * (1 + 0.02 * rng.standard_normal(n))
        step = fwd_bwd + 0.0005 + 0.02 * forward * rng.standard_normal(n)
        bwd, opt = fwd_bwd - fwd, step - fwd_bwd
    else:
        step = (fwd + bwd + opt) * 0.98
    phases = {"forward": summary(fwd), "backward": summary(bwd), "optimizer": summary(opt),
              "total": summary(fwd + bwd + opt)}
    record["timings"] = {"first_step": 0.2, "phases": phases, "step": summary(step),
                         "phase_method": "derived" if derived else "direct"}
    record["engine"] = {"name": engine, "compile_s": {"compile": 31.0, "xla": 4.2, "function": 2.1,
                                                      "torchscript": 0.9}.get(engine, 0.05),
                        "warnings": [WARNING] if engine == "torchscript" else [],
                        "optimizer": "SGD momentum, eager foreach" if framework == "torch" else "SGD momentum, Keras",
                        "precision": "float32"}
    record["process"]["ceilings"] = ceilings(framework, np.random.default_rng(len(framework)))
    record["environment"]["flags"] = flags(framework)
    if cell_id == FAILED_ENGINE:
        record.update(status="failed", error="Traceback (most recent call last):\n"
                                              "XlaRuntimeError: INTERNAL: RET_CHECK failure in convolution emitter")
        del record["timings"]
    return record


def layer_shapes():
    """(in_channels, filters, kernel, image size, activation, pieces) of the engines networks' convolutions, plus
    maxout on the 3x3 ones."""
    shapes = [(c, o, k, s, "relu", 1) for k in (3, 5, 7) for c, o, s in [(3, 32, 16), (32, 64, 8)]]
    return shapes + [(3, 32, 3, 16, "maxout", 2), (32, 64, 3, 8, "maxout", 2)]


def layer_record(framework, c, o, k, s, activation, pieces, n=25):
    name = f"c{c}-o{o}-k{k}-s{s}-{activation}{pieces if pieces > 1 else ''}"
    cell_id = f"layers_{name}_{framework}-eager_cpu1-none_b64_s0_layers"
    arch = {"name": name, "in_channels": c, "num_classes": 10,
            "blocks": [{"width": o, "kernel": k, "depth": 1, "activation": activation, "pieces": pieces, "pool": 1}]}
    record = base.make_record("kernel", "speed", framework, "k3")  # environment and process of a real record
    record["cell"] |= {"study": "layers", "task": "layers", "arch": arch, "image_size": s}
    record["cell"]["settings"]["max_iqr_ratio"] = MAX_IQR_RATIO
    flops = 2 * k * k * c * o * s * s * 64
    record.update(cell_id=cell_id, counts={"params": k * k * c * o + o, "flops_forward": flops})
    rng = np.random.default_rng(zlib.crc32(cell_id.encode()))
    forward = flops / LAYER_RATE[framework]
    to_input, to_weight = BACKWARD_HALVES[framework]
    activation_time = 64 * o * s * s * 4 / 5e9 * (1.8 if pieces > 1 else 1.0)
    medians = {"forward": forward, "backward_input": to_input * forward, "backward_weight": to_weight * forward,
               "activation_forward": activation_time, "activation_backward": 1.5 * activation_time}
    record["timings"] = {"phases": {p: summary(m * (1 + 0.02 * rng.standard_normal(n))) for p, m in medians.items()},
                         "phase_method": "direct"}
    record["engine"] = {"name": "eager", "compile_s": 0.01, "warnings": [], "precision": "float32",
                        "optimizer": "none (no optimizer step)"}
    record["process"]["ceilings"] = ceilings(framework, np.random.default_rng(len(framework)))
    record["environment"]["flags"] = flags(framework)
    return record


def engine_records(backward=None, layers=True):
    records = [engine_record(f, e, a, backward) for f, es in ENGINES.items() for e in es for a in ARCHS]
    if layers:
        records += [layer_record(f, *shape) for f in ENGINES for shape in layer_shapes()]
    return records


def write_engines(root, backward=None, layers=True):
    """Write the engines and layers records under root/records (beside write_run's); returns the dir."""
    out = root / "records"
    for r in engine_records(backward, layers):
        path = out / r["cell"]["task"] / r["cell"]["framework"] / f"{r['cell_id']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r, indent=1))
    return out


def frames(records):
    return tidy.tidy(records), tidy.environment(records), tidy.samples(records)


@pytest.fixture(scope="module")
def run():
    records = engine_records()
    return (records, *frames(records))


def test_bootstrap_interval_holds_the_ratio_and_narrows_with_more_samples():
    rng = np.random.default_rng(1)
    widths = []
    for n in (15, 400):
        a, b = 0.03 * rng.lognormal(0, 0.1, n), 0.01 * rng.lognormal(0, 0.1, n)
        r, lo, hi = claim.bootstrap_ratio(a, b)
        assert lo <= r <= hi and r == pytest.approx(np.median(a) / np.median(b))
        assert 2.5 < r < 3.5
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2
    assert claim.bootstrap_ratio(a, b) == claim.bootstrap_ratio(a, b)  # fixed seed: reproducible


def test_claim_holds_for_a_threefold_difference_and_not_for_equal_times():
    def values(backward):
        df, env, samples = frames(engine_records(backward, layers=False))
        return claim.claims(df, samples), macros.macros(df, env, samples=samples)

    equal = {s: 1.0 for s in BACKWARD}
    c, v = values(equal | {"torch-eager": 3.0})
    eager = c[(c.engine_a == "eager") & (c.engine_b == "eager")]
    assert (eager.holds == "first-slower").all() and (eager.lo >= 2).all()
    assert eager.ratio.between(2.5, 3.5).all()
    sentence = v["engines/claim/sentence"]
    assert "The claim holds" in sentence and "PyTorch eager / TensorFlow eager" in sentence
    k5 = eager[eager.arch == "k5"].iloc[0]
    key = "engines/claim/torch-eager-over-tensorflow-eager/k5"
    assert (v[f"{key}/ratio"], v[f"{key}/ratio-lo"], v[f"{key}/ratio-hi"]) == tuple(
        tables.ratio(x) for x in (k5.ratio, k5.lo, k5.hi))
    # Every ratio the sentence quotes comes with its interval.
    quoted = re.findall(r"\d+\.\d+\$\\times\$( \(95\\,\\% CI \d+\.\d+--\d+\.\d+\))?", sentence)
    assert len(quoted) == 2 and all(quoted)  # the range; holding pairs are named, their ratios in the table
    c, v = values(equal)
    assert not c[c.status == "ok"].holds.any()
    assert "holds for none of them" in v["engines/claim/sentence"]
    # Torch setups halved: the claim holds the other way round.
    c, v = values(equal | {"torch-compile": 0.3})
    assert (c[c.engine_a == "compile"].dropna(subset=["ratio"]).holds == "first-faster").all()
    assert "PyTorch's backward pass several times faster" in v["engines/claim/sentence"]


def test_failed_cell_shows_failed_in_claim_fairness_and_speed_tables(run):
    _, df, env, samples = run
    c = claim.claims(df, samples)
    assert set(c[(c.engine_b == "xla") & (c.arch == "k7")].status) == {"failed"}
    table = claim.claim_table(df, samples)
    row = next(line for line in table.splitlines() if line.startswith("PyTorch eager / TensorFlow xla"))
    assert row.rstrip(r" \\").endswith(r"\emph{failed}")
    fair = engines.fairness(df, env)
    assert fair.loc["Cells", "TensorFlow xla"] == "2 ok, 1 failed"
    speed = tables.speed(df)
    xla = [line for line in speed.splitlines() if "TensorFlow xla" in line]
    assert len(xla) == 3 and sum(r"\emph{failed}" in line for line in xla) == 1
    assert "failed" in macros.macros(df, env, samples=samples)["engines/failed-sentence"]


def test_fairness_table_reads_every_setting_from_the_records(run):
    _, df, env, _ = run
    fair = engines.fairness(df, env)
    assert list(fair.columns) == ["PyTorch eager", "PyTorch torchscript", "PyTorch compile", "TensorFlow eager",
                                  "TensorFlow function", "TensorFlow xla"]
    assert fair.loc["Phases timed", "TensorFlow xla"] == "derived"
    assert fair.loc["Phases timed", "PyTorch compile"] == "direct"
    assert fair.loc["Layout", "PyTorch eager"] == "NCHW" and fair.loc["Layout", "TensorFlow eager"] == "NHWC"
    assert fair.loc["Threads (intra/inter)", "TensorFlow function"] == "2/1"
    assert fair.loc["Compile time (median)", "PyTorch compile"] == "31.0 s"
    assert fair.loc["Compile time (median)", "PyTorch eager"] == "50.0 ms"
    assert fair.loc["xla_auto_jit", "TensorFlow xla"] == "False" and fair.loc["xla_auto_jit", "PyTorch eager"] == "--"
    assert fair.loc["Warnings", "PyTorch torchscript"].startswith("torch.jit.script is deprecated.")
    assert len(fair.loc["Warnings", "PyTorch torchscript"]) <= 80
    assert "64" in fair.loc["Batch", "PyTorch eager"]
    assert "failed" not in engines.fairness_table(df, env).split(r"\midrule")[0]


def test_fairness_shows_failed_for_a_setup_whose_cells_all_failed():
    records = [engine_record("tensorflow", "xla", a) for a in ARCHS] + [engine_record("torch", "eager", "k3")]
    for r in records[:3]:
        r.update(status="failed", error="XlaRuntimeError: boom")
        r.pop("timings", None), r.pop("engine")
    df, env, _ = frames(records)
    fair = engines.fairness(df, env)
    assert fair.loc["Cells", "TensorFlow xla"] == "0 ok, 3 failed"
    assert fair.loc["Optimizer", "TensorFlow xla"] == "failed" and fair.loc["Layout", "TensorFlow xla"] == "NHWC"


def test_roofline_fraction_is_achieved_over_attainable(run):
    records, df, _, _ = run
    record = next(r for r in records if r["cell_id"] == "engines_k5_tensorflow-function_cpu1-none_b64_s0_speed")
    flops, moved = record["counts"]["flops_step"], record["counts"]["bytes_step"]
    gemm = record["process"]["ceilings"]["gemm_flops"]["median"]
    bandwidth = record["process"]["ceilings"]["memory_bandwidth"]["median"]
    achieved = flops / record["timings"]["step"]["median"]
    attainable = min(gemm, bandwidth * flops / moved)
    rows = df[df.cell_id == record["cell_id"]].set_index("metric")
    assert rows.loc["achieved_flops", "value"] == pytest.approx(achieved)
    assert rows.loc["attainable_flops", "value"] == pytest.approx(attainable)
    assert rows.loc["ceiling_fraction", "value"] == pytest.approx(achieved / attainable)
    assert rows.loc["gemm_flops", "value"] == gemm and rows.loc["gemm_flops", "n"] == 7
    assert rows.loc["compile_time", "value"] == 2.1
    assert tables.percent(achieved / attainable) in tables.speed(df)


def test_estimated_split_sums_to_the_measured_backward(run):
    _, df, _, _ = run
    phases = engines.engine_phases(df)
    times = tidy.summarise(df[df.study == "engines"], "time")
    for (setup, arch), rows in phases[phases.status == "ok"].groupby(["setup", "arch"]):
        split = rows.set_index("phase")["value"]
        measured = times[(times.setup == setup) & (times.arch == arch) & (times.phase == "backward")].value.iloc[0]
        assert split["backward_input"] + split["backward_weight"] == pytest.approx(measured)
        assert "backward" not in split
    # By hand for PyTorch k5: the first convolution has no backward-to-input (the images need no gradient).
    t = tidy.summarise(df[(df.task == "layers") & (df.framework == "torch") & (df.activation == "relu")], "time")
    t = t.set_index(["arch", "phase"])["value"]
    to_input = t["c32-o64-k5-s8-relu", "backward_input"]
    to_weight = t["c3-o32-k5-s16-relu", "backward_weight"] + t["c32-o64-k5-s8-relu", "backward_weight"]
    fraction = phases[(phases.setup == "torch-compile") & (phases.arch == "k5")].input_fraction.iloc[0]
    assert fraction == pytest.approx(to_input / (to_input + to_weight))


def test_without_layer_cells_the_backward_stays_whole_with_a_note():
    df, env, samples = frames(engine_records(layers=False))
    phases = engines.engine_phases(df)
    assert set(phases.phase.dropna()) == {"forward", "backward", "optimizer"}
    v = macros.macros(df, env, samples=samples)
    assert "not split" in v["engines/bars-note"] and "no layer-wise cells" in layers.layers_table(df)


def test_noisy_cells_are_flagged_with_the_threshold(run):
    _, df, env, samples = run
    cell, phase = NOISY
    row = df[(df.cell_id == cell) & (df.metric == "time") & (df.phase == phase)].iloc[0]
    assert row.noisy == True  # noqa: E712 (a nullable boolean)
    assert not df[(df.cell_id == cell) & (df.phase == "forward")].noisy.any()
    speed = tables.speed(df)
    shown = tidy.summarise(df[df.task == "speed"], "time")
    assert speed.count(tables.DAGGER) == shown.noisy.sum() + 1  # and once in the note
    rows = speed.split(r"\midrule")[1].splitlines()
    start = next(i for i, line in enumerate(rows) if line.startswith("k5"))
    k5 = next(line for line in rows[start:] if "PyTorch compile" in line).split(" & ")
    assert k5[3].endswith(tables.DAGGER) and tables.DAGGER not in k5[2]  # backward flagged, forward not
    assert not any(tables.DAGGER in line for line in rows if "PyTorch eager" in line)
    assert r"exceeded 0.1 of the median" in speed
    assert tables.DAGGER in claim.claim_table(df, samples)


def test_layer_table_splits_the_convolution_and_compares_activations(run):
    _, df, env, samples = run
    table = layers.layers_table(df)
    assert r"32$\to$64, 5$\times$5 at 8$\times$8" in table
    t = tidy.summarise(df[df.task == "layers"], "time").set_index(["arch", "framework", "phase"])["value"]
    assert tables.sig3(t["c3-o32-k7-s16-relu", "tensorflow", "backward_weight"] * 1e3) in table
    act = lambda name: (t[name, "torch", "activation_forward"] + t[name, "torch", "activation_backward"])
    expected = act("c3-o32-k3-s16-maxout2") / act("c3-o32-k3-s16-relu")
    assert tables.ratio(expected) in table
    v = macros.macros(df, env, samples=samples)
    assert v["layerwise/torch/maxout-over-relu"] in {tables.ratio(expected), tables.ratio(
        act("c32-o64-k3-s8-maxout2") / act("c32-o64-k3-s8-relu"))} or "--" in v["layerwise/torch/maxout-over-relu"]
    assert "cost more in PyTorch" in v["layerwise/sentence"]
    achieved = df[(df.cell_id.str.contains("c3-o32-k5-s16-relu_torch")) & (df.metric == "achieved_flops")]
    assert set(achieved.phase) == {"forward", "backward_input", "backward_weight"}


def test_text_and_figures_for_the_engines_study(run, tmp_path):
    _, df, env, samples = run
    v = macros.macros(df, env, samples=samples)
    for key in ["engines/scope", "engines/methods-sentence", "engines/derived-sentence", "engines/compile-sentence",
                "engines/split-sentence", "engines/roofline-sentence", "engines/bars-note", "engines/claim/sentence",
                "layerwise/sentence", "engines/failed-sentence"]:
        assert v[key], key
    assert "derived" in v["engines/methods-sentence"] and "TensorFlow xla" in v["engines/methods-sentence"]
    assert "estimated from layer-wise timings" in v["engines/bars-note"]
    paths = figures.all_figures(df, tmp_path)
    assert {p.stem for p in paths} >= {"roofline", "engine_phases", "layers"}
    assert all(p.read_bytes().startswith(b"%PDF") for p in paths)


def test_analyse_writes_samples_and_engine_tables(tmp_path):
    records = write_engines(tmp_path)
    out = analyse(records, tmp_path / "generated")
    samples = pd.read_csv(out / "samples.csv")
    assert samples.cell_id.nunique() == len(list(records.rglob("*.json"))) - 1  # the failed cell has none
    for name in ("claim", "layers", "fairness", "speed"):
        assert (out / "tables" / f"{name}.tex").read_text().startswith(r"\begin{table}")


def test_old_records_still_analyse(tmp_path):
    """Records without the new fields (the default run before issue 3) give the new keys as 'not in this run'."""
    df = tidy.tidy(tidy.load_records(base.write_run(tmp_path)))
    v = macros.macros(df, pd.DataFrame())
    assert "study, so it does not time compiled engines" in v["engines/scope"] and "does not test" in v["engines/claim/sentence"]
    assert "no layer-wise cells" in v["layerwise/sentence"]
