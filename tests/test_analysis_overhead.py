"""The overhead study: a batch sweep per engine, the fit step time = a + b x batch with intervals, and the backward
claim read in (engine, batch) space. Also the config side: sweeps over batches and image sizes, a study's own timing
protocol, no layer cells for the sweep's other batches."""
import json

import numpy as np
import pytest
from conftest import new_record

from convbench import config
from convbench.analysis import analyse_study, records, tidy
from convbench.analysis.latex import read_macros
from convbench.analysis.overhead import STUDY, fit_line
from convbench.analysis.overhead.fit import claim_space
from convbench.analysis.stats import Outcome
from convbench.analysis.study import Run
from convbench.analysis.sweep import fits

TRUE = {"torch-eager": (0.2e-3, 20e-6), "tensorflow-eager": (5e-3, 20e-6)}  # backward a (s), b (s per example)
BATCHES = (1, 8, 64, 256)


def test_fit_line_recovers_overhead_and_per_sample_cost():
    rng = np.random.default_rng(1)
    batch = np.array([1, 4, 16, 64, 256])
    seconds = (1e-3 + 30e-6 * batch) * (1 + 0.02 * rng.standard_normal(len(batch)))
    f = fit_line(batch, seconds)
    assert f["a_lo"] < 1e-3 < f["a_hi"] and f["b_lo"] < 30e-6 < f["b_hi"] and f["n"] == 5
    assert f["a_hi"] - f["a_lo"] < 0.5e-3  # relative weights: the small batches pin a down
    assert np.isnan(fit_line([1, 256], [1e-3, 8e-3])["a"])  # two points leave no residual to build an interval on


def speed_record(setup, batch, rng):
    framework, engine = setup.split("-")
    a, b = TRUE[setup]
    cell_id = f"overhead_k3_{setup}_cpu1-none_b{batch}_s0_speed"
    arch = {"name": "k3", "in_channels": 3, "num_classes": 10,
            "blocks": [{"width": w, "kernel": 3, "depth": 1, "activation": "relu", "pieces": 1, "pool": 2}
                       for w in (32, 64)]}

    def summary(median):
        x = [float(v) for v in median * (1 + 0.02 * rng.standard_normal(12))]
        q1, q3 = np.percentile(x, [25, 75])
        return {"median": float(np.median(x)), "iqr": float(q3 - q1), "cv": 0.02, "n": 12, "noisy": False,
                "samples": x}

    backward = a + b * batch
    phases = {"forward": summary(backward / 2), "backward": summary(backward), "optimizer": summary(1e-4)}
    cell = {"study": "overhead", "task": "speed", "framework": framework, "engine": engine, "device": "cpu",
            "devices": 1, "parallelism": "none", "batch_size": batch, "image_size": 16, "seed": 0, "threads": 2,
            "arch": arch, "settings": {"max_iqr_ratio": 0.1}}
    return new_record(cell, cell_id, timings={"phase_method": "direct", "phases": phases,
                                              "step": summary(1.5 * backward + 1e-4)},
                      environment={}, engine={"name": engine})


@pytest.fixture(scope="module")
def run():
    rng = np.random.default_rng(0)
    parsed = [records.parse(json.loads(json.dumps(speed_record(s, b, rng)))) for s in TRUE for b in BATCHES]
    return Run(tidy.tidy(parsed), tidy.samples(parsed), tidy.environment(parsed))


def test_the_fits_find_each_engines_overhead(run):
    f = fits(run.tidy).set_index(["setup", "phase"])
    for setup, (a, b) in TRUE.items():
        row = f.loc[(setup, "backward")]
        assert row["a_lo"] < a < row["a_hi"] and row["b_lo"] < b < row["b_hi"]
    assert f.loc[("tensorflow-eager", "backward"), "a_lo"] > f.loc[("torch-eager", "backward"), "a_hi"]


def test_the_claim_holds_at_small_batches_only(run, tmp_path):
    """TensorFlow eager pays 5 ms per backward pass, PyTorch 0.2 ms, both 20 us per example: PyTorch is several
    times faster at batch 1 (25x) and not at batch 256 (0.53x)."""
    c = claim_space(run.tidy, run.samples).set_index("batch_size")
    assert c.loc[1, "outcome"] is Outcome.AT_LEAST and c.loc[1, "ratio"] < 1 and c.loc[256, "outcome"] is not Outcome.AT_LEAST
    out = analyse_study(STUDY, run, tmp_path / "out")
    v = read_macros(out / "macros.tex")
    assert v["overhead/ran"] == "1" and v["overhead/batches"] == "1, 8, 64 and 256"
    assert v["overhead/claim/holds-at-smallest"] == "1" and v["overhead/claim/holds-at-largest"] == "0"
    held = c[c["outcome"].isin([Outcome.AT_LEAST])].index  # every batch it held at, so the counts add up
    assert v["overhead/claim/holds-by-batch"].startswith("1 engine pair at batch 1")
    by_batch = v["overhead/claim/holds-by-batch"]
    assert all(f"at batch {b}" in by_batch for b in held) and "256" not in by_batch
    assert v["overhead/backward/a-max-setup"] == "TensorFlow eager"
    assert float(v["overhead/backward/a-max-ms"]) == pytest.approx(5.0, rel=0.1)
    assert (out / "figures" / "overhead.pdf").stat().st_size > 0
    table = (out / "tables" / "overhead.tex").read_text()
    assert "PyTorch eager" in table and "Backward a" in table
    assert "batch 256" in (out / "tables" / "overhead-claim.tex").read_text()
    verdicts = json.loads((out / "verdicts.json").read_text())
    assert len(verdicts) == len(BATCHES) and all(v["lo"] <= v["estimate"] <= v["hi"] for v in verdicts)


def test_the_default_sweep_is_small_and_leaves_layer_cells_alone():
    cells = config.load("config/config.yaml")[1]
    sweep = [c for c in cells if c.study == "overhead"]
    settings = config.read("config/config.yaml")
    batches = {c.batch_size for c in sweep}
    assert batches == set(settings["studies"]["overhead"]["batches"]) and {c.arch.name for c in sweep} == {"k3"}
    assert len(batches) >= 3 and max(batches) >= 100 * min(batches)  # a + b x batch needs spread over batches
    assert len(sweep) <= 16  # the default run's time budget: no compiling engine, one network
    own, speed = settings["studies"]["overhead"]["speed"], settings["speed"]
    assert own["max_seconds"] < speed["max_seconds"]  # the study's own protocol over speed's, and it applies
    assert all(c.settings["max_seconds"] == own["max_seconds"] for c in sweep)
    layers = [c for c in cells if c.task == "layers"]
    assert layers and {c.batch_size for c in layers} == {64}


def test_a_size_sweep_names_its_image_size_and_bad_sweeps_are_refused():
    settings = config.read("config/paper-gpu.yaml")
    cells = config.check(settings)
    size = [c for c in cells if c.study == "size"]
    assert max(c.image_size for c in size) == 128 and max(c.batch_size for c in size) == 1024
    assert len({c.id for c in size}) == len(size) and "b1024-i128" in size[-1].id
    settings["studies"]["size"]["batches"] = [0]
    with pytest.raises(config.ConfigError, match=r"studies\.size\.batches\.0"):
        config.check(settings)
    settings = config.read("config/config.yaml")
    settings["studies"]["overhead"]["speed"] = {"launches": 2}
    with pytest.raises(config.ConfigError, match=r"studies\.overhead\.speed"):
        config.check(settings)


def test_one_configuration_is_resolved_once_for_every_study():
    """Issue 20: the same program (TensorFlow tf.function, k3, batch 64) timed by the engines study and by the overhead
    study gets one answer. Its derived backward pass is clear in the overhead cell and reaches zero in the engines
    cell, so the tidy table marks it unresolved in both, and both studies read that."""
    from convbench.analysis.engines.values import unresolved

    rng = np.random.default_rng(3)
    TRUE["tensorflow-function"] = (5e-3, 20e-6)
    try:
        cells = [speed_record(s, 64, rng) for s in ("torch-eager", "tensorflow-function")]
        engines = json.loads(json.dumps(cells[1]))
        engines["cell_id"] = engines["cell_id"].replace("overhead_", "engines_")
        engines["cell"]["study"] = "engines"
        engines["timings"]["phases"]["backward"]["samples"][0] = -1e-4  # a difference of two programs below zero
        for r in (cells[1], engines):
            r["timings"]["phase_method"] = "derived"
        parsed = [records.parse(r) for r in (*cells, engines)]
    finally:
        del TRUE["tensorflow-function"]
    plain = tidy.tidy(parsed)
    df = tidy.resolve(plain, tidy.samples(parsed))
    rows = df[(df["metric"] == "time") & (df["phase"] == "backward")].set_index("cell_id")["resolved"]
    assert not rows[cells[1]["cell_id"]] and not rows[engines["cell_id"]] and rows[cells[0]["cell_id"]]
    run = Run(df, tidy.samples(parsed), tidy.environment(parsed))
    assert not claim_space(run.tidy, run.samples)["resolved"].any()  # overhead: not resolved
    assert list(unresolved(run).query("phase == 'backward'")["cell_id"]) == [engines["cell_id"]]  # engines: alike
    alone = tidy.resolve(plain[plain["study"] == "overhead"], tidy.samples(parsed))  # without the engines cell
    assert alone.loc[(alone["metric"] == "time") & (alone["phase"] == "backward"), "resolved"].all()


def test_the_claim_is_counted_at_every_batch_it_held():
    """'5 points at batches 1, 16 and 256; 2 at batch 1 and 1 at batch 256' left out batch 16: each batch is named."""
    from convbench.analysis.overhead.values import by_batch
    assert by_batch([1, 1, 16, 16, 256]) == "2 engine pairs at batch 1, 2 at batch 16 and 1 at batch 256"
    assert by_batch([]) == "none"


def test_a_fitted_cost_whose_interval_holds_zero_is_said_to_hold_it(run, tmp_path):
    """'per-sample cost ... to 122 us (TensorFlow eager)' with an interval of [-70.0, 313]: the text must not state it
    as a measured cost; a term whose interval excludes 0 gets no note. The fit table prints minus signs as LaTeX
    ($-$ inside a raw cell, not escaped to a literal '$-$') and names its interval's kind."""
    from convbench.analysis.overhead.values import zero_note
    from convbench.analysis.sweep import FIT_KIND, fit_table
    assert zero_note(-70e-6, 313e-6, "$-$70.0", "313") == ", whose interval ($-$70.0 to 313) includes 0"
    assert zero_note(11e-6, 43e-6, "11.3", "43.6") == ""
    v = read_macros(analyse_study(STUDY, run, tmp_path / "out") / "macros.tex")
    assert (v["overhead/step/b-max-zero"] == "") == (not v["overhead/step/b-max-lo"].startswith("$-$"))
    flat = run.tidy.copy()  # one setup's step as flat as noise: its per-sample cost straddles zero
    rows = (flat["metric"] == "time") & (flat["phase"] == "step") & (flat["setup"] == flat["setup"].iloc[0])
    flat.loc[rows, "value"] = 0.01 * (1 + 0.05 * np.sin(flat.loc[rows, "batch_size"]))
    table = fit_table(Run(flat, run.samples, run.environment))
    assert "$-$" in table and r"\$-\$" not in table and FIT_KIND in table
