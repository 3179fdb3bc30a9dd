"""The step model on several devices (convbench.step_model): the alpha-beta formulas on hand-computed cases, DDP's
buckets, the overlap of data parallel and the critical path of tensor parallel; then the scaling study's check of
the model on fixture records (layer-wise, speed and scaling records through write_tidy + read_run, as in the
pipeline) and the projection to several GPUs from a reference run, its figure registered and labelled projection."""
import json
from pathlib import Path

import pytest
from builders.scaling import LATEX, arch, build, record, timing
from conftest import new_record

from convbench import config as config_module
from convbench import step_model as model
from convbench.analysis import analyse_study, read_run, write_tidy
from convbench.analysis.latex import read_macros
from convbench.analysis.scaling import STUDY
from convbench.analysis.scaling import projection as pj
from convbench.parallel import bytes_model
from convbench.spec import ArchSpec, param_count

ROOT = Path(__file__).resolve().parents[1]
LINK = model.Link("test", alpha=1e-6, beta=1e-9)  # 1 us per step, 1 GB/s


# --- the formulas, by hand ------------------------------------------------------------------------------------------

def test_ring_and_tree_times_by_hand():
    n = 1_000_000
    assert model.collective_time("all_reduce", n, 4, LINK) == pytest.approx(6e-6 + 1.5e-3)  # 2(p-1), 2(p-1)/p
    assert model.collective_time("all_gather", n, 4, LINK) == pytest.approx(3e-6 + 0.75e-3)
    assert model.collective_time("reduce_scatter", n, 4, LINK) == pytest.approx(3e-6 + 0.75e-3)
    assert model.collective_time("all_reduce", n, 8, LINK, "tree") == pytest.approx(6e-6 + 2e-3)  # 2 log2 8, 2n
    assert model.collective_time("all_reduce", n, 1, LINK) == 0.0
    # small messages take the tree (fewer steps), large ones the ring (fewer bytes)
    assert model.best_time("all_reduce", 8, 8, LINK) == pytest.approx(6e-6 + 16e-9)
    assert model.best_time("all_reduce", n, 8, LINK) == pytest.approx(14e-6 + 1.75e-3)
    with pytest.raises(ValueError, match="tree"):
        model.collective_time("all_gather", n, 4, LINK, "tree")


def test_two_nodes_are_hierarchical_by_hand():
    fast, slow = model.Link("fast", 1e-6, 1e-10), model.Link("slow", 5e-6, 1e-9)
    fabric = model.Fabric(fast, 8, slow, algorithms=("ring",))
    n = 8_000_000
    within_rs = 7e-6 + n * 1e-10 * 7 / 8
    across_ar = 2 * 5e-6 + (n / 8) * 1e-9 * 1.0  # 2 nodes: 2 steps, 2(2-1)/2 = 1
    within_ag = within_rs
    assert fabric.time("all_reduce", n, 16) == pytest.approx(within_rs + across_ar + within_ag)
    assert fabric.time("all_reduce", n, 8) == pytest.approx(14e-6 + n * 1e-10 * 14 / 8)
    with pytest.raises(ValueError, match="whole nodes"):
        fabric.time("all_reduce", n, 12)
    gloo = model.Fabric(fast, algorithms=("ring",), aliases={"reduce_scatter": "all_reduce"})
    assert gloo.time("reduce_scatter", n, 2) == gloo.time("all_reduce", n, 2)


def test_link_units_and_fit():
    link = model.Link.from_config("nvlink4", {"bandwidth_gbs": 450, "latency_us": 5})
    assert link.alpha == pytest.approx(5e-6) and 1 / link.beta == pytest.approx(450e9)
    points = [(s, b, 3e-5 * s + 2e-9 * b) for s, b in [(2, 80_000), (7, 800_000), (2, 200_000), (7, 1_600_000)]]
    alpha, beta = model.fit_alpha_beta(points)
    assert alpha == pytest.approx(3e-5, rel=1e-6) and beta == pytest.approx(2e-9, rel=1e-6)


def test_ddp_buckets_and_gradient_order():
    spec = ArchSpec.from_dict("k7", arch("k7", 7, (64, 128)), 3, 10)
    grads = model.gradient_bytes(spec)
    assert [i for i, _ in grads] == [2, 1, 0] and sum(b for _, b in grads) == 4 * param_count(spec)
    # the classifier and the 1.6 MB second convolution pass the first bucket's 1 MiB: it closes there
    assert model.ddp_buckets(grads) == [(1, grads[0][1] + grads[1][1]), (0, grads[2][1])]
    small = ArchSpec.from_dict("k3", arch("k3", 3, (32, 64)), 3, 10)  # 80 KB: one bucket, as DDP counted on the CPU
    assert model.ddp_buckets(model.gradient_bytes(small)) == [(0, bytes_model.data_parallel_bytes(small, 2)
                                                               ["payload_bytes"])]


def test_overlap_and_critical_path_by_hand():
    compute = model.Compute(forward=(1.0, 1.0), backward=(1.0, 2.0), rest=0.5)  # total 5.5
    # conv 1's backward ends at 2, conv 0's at 3; the first all-reduce hides behind conv 0, the second is exposed
    out = model.data_parallel_step(compute, [(1, 0.5), (0, 3.0)])
    assert out["exposed"] == pytest.approx(3.0) and out["step"] == pytest.approx(8.5)
    hidden = model.data_parallel_step(compute, [(1, 0.5)])
    assert hidden["exposed"] == 0.0 and hidden["step"] == pytest.approx(5.5)
    late = model.data_parallel_step(compute, [(1, 1.5)])  # starts at 2, ends at 3.5: 0.5 past the backward
    assert late["exposed"] == pytest.approx(0.5)
    tensor = model.tensor_parallel_step(compute, [0.1, 0.2, 0.3])
    assert tensor["step"] == pytest.approx(6.1) and tensor["exposed"] == pytest.approx(0.6)
    assert model.share("data", 4, 256, 256) == 0.25 and model.share("tensor", 4, 1024, 256) == 1.0


def test_tensor_collectives_follow_the_byte_model():
    spec = ArchSpec.from_dict("k3", arch("k3", 3, (32, 64)), 3, 10)
    forward, backward = model.tensor_collectives(spec, 16, 64, 2)
    assert [op for op, _ in forward] == ["all_gather", "all_reduce"]
    assert [op for op, _ in backward] == ["all_reduce", "reduce_scatter"]
    assert sum(b for _, b in forward + backward) == bytes_model.tensor_parallel_bytes(spec, 16, 64, 2)["payload_bytes"]


# --- the check on fixture records -----------------------------------------------------------------------------------

ALPHA, BETA = 50e-6, 1e-9  # the loopback the fixture's replays follow
LAYERS = {"c3-o32-k3-s16": (1.0, 1.0, 1.0), "c32-o64-k3-s8": (1.0, 1.0, 1.0)}  # forward, to input, to weights (ms)
SPEED_STEP = 8.0  # ms: the one-device step of the kernel study's speed cell


def layer_record(shape: str, times) -> dict:
    c_in, c_out, k, size = (int(part[1:]) for part in shape.split("-"))
    a = {"name": f"{shape}-relu", "in_channels": c_in, "num_classes": 10,
         "blocks": [{"width": c_out, "kernel": k, "depth": 1, "activation": "relu", "pieces": 1, "pool": 1}]}
    cell_id = f"layers_{shape}-relu_torch-eager_cpu1-none_b64_s0_layers"
    phases = dict(zip(["forward", "backward_input", "backward_weight"], map(timing, times)))
    phases |= {"activation_forward": timing(0.1), "activation_backward": timing(0.1)}
    cell = {"study": "layers", "task": "layers", "framework": "torch", "engine": "eager", "arch": a, "batch_size": 64,
            "image_size": size, "seed": 0, "threads": 2, "device": "cpu", "devices": 1, "parallelism": "none",
            "train_fraction": 1.0, "settings": {}}
    return new_record(cell, cell_id, timings={"phase_method": "direct", "phases": phases},
                      environment={"threads": {"intra_op": 2}})


def speed_record() -> dict:
    a = arch("k3", 3, (32, 64))
    phases = {"forward": timing(3.0), "backward": timing(4.5), "optimizer": timing(0.5)}
    cell = {"study": "kernel", "task": "speed", "framework": "torch", "engine": "eager", "arch": a, "batch_size": 64,
            "image_size": 16, "seed": 0, "threads": 2, "device": "cpu", "devices": 1, "parallelism": "none",
            "train_fraction": 1.0, "settings": {}}
    return new_record(cell, "kernel_k3_torch-eager_cpu1-none_b64_s0_speed",
                      timings={"phase_method": "direct", "phases": phases, "step": timing(SPEED_STEP)},
                      environment={"threads": {"intra_op": 2}})


def with_calls(rec: dict, calls: list[tuple[str, int]]) -> dict:
    rec["communication"]["measured"]["calls"] = [{"op": op, "phase": "backward", "shape": [b // 4], "bytes": b}
                                                 for op, b in calls]
    return rec


def replay_ms(calls, p=2) -> float:
    gloo = {"reduce_scatter": "all_reduce"}
    return 1e3 * sum(ALPHA * model.steps(gloo.get(op, op), p) + BETA * b * model.byte_factor(gloo.get(op, op), p)
                     for op, b in calls)


OVERHEAD = {"forward": 1.0, "backward": 1.5, "optimizer": 0.5}  # ms a step at any batch: a of a + b x batch
PER_SAMPLE = {"forward": 2 / 64, "backward": 3 / 64, "optimizer": 0.0}  # ms per sample: b (batch 64: the speed cell)


def sweep_records(batches=(1, 8, 64, 256)) -> list[dict]:
    """The overhead study's k3 cells in PyTorch eager: each phase a + b x batch exactly."""
    out = []
    for batch in batches:
        rec = speed_record()
        phases = {p: OVERHEAD[p] + PER_SAMPLE[p] * batch for p in OVERHEAD}
        rec["cell_id"] = f"overhead_k3_torch-eager_cpu1-none_b{batch}_s0_speed"
        rec["cell"] |= {"study": "overhead", "batch_size": batch}
        rec["timings"] |= {"phases": {p: timing(t) for p, t in phases.items()}, "step": timing(sum(phases.values()))}
        out.append(rec)
    return out


def fixture(off: float = 0.05, overhead: bool = False) -> list[dict]:
    """Scaling cells whose measured steps lie `off` from what the model predicts (alternately above and below).
    overhead: with the overhead study's sweep, whose per-step overhead (3 ms) each device pays whole."""
    a = arch("k3", 3, (32, 64))
    spec = ArchSpec.from_dict("k3", a, 3, 10)
    data_calls = [("all_reduce", bytes_model.data_parallel_bytes(spec, 2)["payload_bytes"])]
    records = [layer_record(s, t) for s, t in LAYERS.items()] + [speed_record(),
                                                                  record("torch", a, 1, step=SPEED_STEP * (1 + off))]
    fixed = sum(OVERHEAD.values()) if overhead else 0.0
    records += sweep_records() if overhead else []
    for mode, sign in (("strong", 1), ("weak", -1)):
        batch = 64 if mode == "strong" else 128
        forward, backward = model.tensor_collectives(spec, 16, batch, 2)
        tensor_calls = forward + backward
        # 2 ranks of 1 thread each: each as slow as half the cores on its half, but for the per-step overhead
        work = fixed + (SPEED_STEP - fixed) * batch / 64
        data = work + replay_ms(data_calls)  # one bucket, ready when the backward ends: all of it exposed
        tensor = work + replay_ms(tensor_calls)
        records += [
            with_calls(record("torch", a, 2, "data", mode, step=data * (1 - sign * off), comm=replay_ms(data_calls)),
                       data_calls),
            with_calls(record("torch", a, 2, "tensor", mode, step=tensor * (1 + sign * off),
                              comm=replay_ms(tensor_calls)), tensor_calls)]
    return records


def run_with(records, root: Path, reference=None, projection=None):
    for r in records:
        folder = root / "records" / r["cell"]["task"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{r['cell_id']}.json").write_text(json.dumps(r))
    return read_run(write_tidy(root / "records", root / "generated"), reference=reference, projection=projection)


def test_check_reproduces_the_fixture_cells_within_the_goal(tmp_path):
    run = run_with(fixture(0.05), tmp_path)
    checked, link, points = pj.check(run)
    assert link.alpha == pytest.approx(ALPHA, rel=1e-3) and link.beta == pytest.approx(BETA, rel=1e-3)
    assert len(points) == 4 and len(checked) == 5 and set(checked["source"]) == {"speed"}
    assert checked["error"].abs().max() == pytest.approx(0.05 / 1.05, abs=0.02)
    assert (checked["error"].abs() <= pj.GOAL).all()
    values = STUDY.values(run)
    assert values["scaling/projection/check-within"] == "5" and values["scaling/projection/check-all-within"] == "1"
    assert values["scaling/projection/error/torch-eager/k3/none-strong/t1"] == "$-$4.8"


def test_the_per_step_overhead_does_not_shrink_with_a_devices_share(tmp_path):
    """Cells that pay the overhead study's per-step overhead (3 ms of the 8 ms step) whole on each device: the model
    that keeps it whole predicts them; the one that scales it with the work misses the weak cells (each device on
    the whole per-device batch with half the threads) by up to 16 / 13 - 1 = 23 %."""
    assert model.Compute((2.0,), (3.0,), 1.0).with_overhead(0.5, 1.0, 0.5).scaled(2.0).total == \
        pytest.approx(2 * 6.0 - 2.0)
    assert model.Compute((2.0,), (3.0,), 1.0).scaled(0.5).total == pytest.approx(3.0)  # no overhead: all of it
    checked, _, _ = pj.check(run_with(fixture(0.0, overhead=True), tmp_path))
    assert len(checked) == 5 and checked["overhead"].tolist() == pytest.approx([3e-3] * 5)
    assert checked["error"].abs().max() < 0.01
    weak = checked[checked["mode"] == "weak"]
    assert (weak["error_without_overhead"] > pj.GOAL).all()  # 16 / 13 - 1 of the computation, less with the comm.
    assert checked.loc[checked["mode"] == "strong", "error_without_overhead"].abs().max() < 0.01  # same share of cores
    fixed = pj.step_overhead(run_with(sweep_records(), tmp_path / "sweep").tidy, "torch")
    assert fixed == pytest.approx((0.5e-3, 0.75e-3, 0.25e-3), rel=1e-3)  # per convolution: k3 has two


def test_the_one_device_step_is_taken_at_one_batch(tmp_path):
    """The overhead study times the speed cell's network at other batches too: the one-device step is the median at
    the batch most cells ran at (64: the speed cell's and the sweep's), not a median over every batch."""
    records = [layer_record(s, t) for s, t in LAYERS.items()] + [speed_record()] + sweep_records((1, 2, 4, 8, 64))
    run = run_with(records, tmp_path)
    base = pj.base_of(run.tidy, run.environment, " ".join(LAYERS), "relu", 1, "torch", overhead=False)
    assert base.batch == 64 and base.step == pytest.approx(SPEED_STEP * 1e-3)


def test_the_check_says_whether_the_computation_or_the_communication_misses(tmp_path):
    """Each device alone on its share (the baseline) takes what the model computes, but inside the step the
    collectives take twice their replay: the miss is the communication's, and the values say so; with baselines 40 %
    off the model's computation they do not."""
    def cells(baseline_off: float) -> list[dict]:
        a = arch("k3", 3, (32, 64))
        spec = ArchSpec.from_dict("k3", a, 3, 10)
        data_calls = [("all_reduce", bytes_model.data_parallel_bytes(spec, 2)["payload_bytes"])]
        forward, backward = model.tensor_collectives(spec, 16, 64, 2)
        out = [layer_record(s, t) for s, t in LAYERS.items()] + [speed_record(), record("torch", a, 1, step=SPEED_STEP)]
        for parallelism, calls in (("data", data_calls), ("tensor", forward + backward)):
            comm = replay_ms(calls)
            out.append(with_calls(record("torch", a, 2, parallelism, "strong", step=SPEED_STEP + 2 * comm, comm=comm,
                                         baseline=SPEED_STEP * (1 + baseline_off)), calls))
        return out

    run = run_with(cells(0.0), tmp_path / "comm")
    checked, _, _ = pj.check(run)
    several = checked[checked["parallelism"] != "none"]
    assert several["compute_error"].abs().max() < 0.01
    assert (several["above_baseline"] > 1.9 * several["exposed"]).all()
    values = STUDY.values(run)
    assert values["scaling/projection/comm-misses"] == "1" and values["scaling/projection/compute-error-max"] == "0"
    off = STUDY.values(run_with(cells(0.4), tmp_path / "compute"))
    assert off["scaling/projection/comm-misses"] == "0" and off["scaling/projection/compute-error-max"] == "29"


def test_check_reports_cells_beyond_the_goal(tmp_path):
    checked, _, _ = pj.check(run_with(fixture(0.4), tmp_path))
    assert (checked["error"].abs() > pj.GOAL).sum() == 5


# --- the projection -------------------------------------------------------------------------------------------------

def reference_run(root: Path, sweep: bool = False) -> Path:
    """A reference 'GPU' run: the fixture's layer and speed records as a committed results/reference/<gpu>, with the
    overhead study's sweep if asked."""
    folder = root / "fake-gpu" / "records"
    for r in [layer_record(s, t) for s, t in LAYERS.items()] + [speed_record()] + (sweep_records() if sweep else []):
        (folder / r["cell"]["task"]).mkdir(parents=True, exist_ok=True)
        (folder / r["cell"]["task"] / f"{r['cell_id']}.json").write_text(json.dumps(r))
    return root


def projection_config(**changes) -> dict:
    section = config_module.read(ROOT / "config/config.yaml")["projection"]
    return {**section, "gpu": "fake-gpu", **changes}


def test_projection_from_a_reference_run(tmp_path):
    run = run_with(fixture(), tmp_path / "run", reference_run(tmp_path / "ref"), projection_config())
    rows, why = pj.projected(run)
    assert why == "" and set(rows["devices"]) == {1, 2, 4, 8, 16} and set(rows["kernel"]) == {3}
    one = rows[(rows["devices"] == 1)]
    assert one["efficiency"].tolist() == pytest.approx([1.0] * len(one))
    eight = rows[(rows["devices"] == 8) & (rows["mode"] == "strong")].set_index("parallelism")
    # per GPU an eighth of 8 ms; the step adds what the collectives expose
    assert eight.loc["data", "compute"] == pytest.approx(1e-3)
    assert eight.loc["data", "efficiency"] == pytest.approx(1e-3 / eight.loc["data", "step"])
    values = STUDY.values(run)
    assert values["scaling/projection/gpu-ran"] == "1" and values["scaling/projection/intra-gbs"] == "450"
    assert values["scaling/projection/k3/data-strong/t8/efficiency"] == f"{eight.loc['data', 'efficiency']:.2f}"
    cross = pj.crossover(rows)
    sweep = rows[(rows["mode"] == "sweep") & (rows["global_batch"] == 8)].set_index("parallelism")["step"]
    assert (cross[3] >= 8) == (sweep["tensor"] < sweep["data"])


def test_the_projection_keeps_the_reference_runs_per_step_overhead_whole(tmp_path):
    """With a batch sweep in the reference run, its 3 ms per-step overhead stays whole on each of 8 GPUs and the other
    5 ms of the 8 ms step shrink to an eighth; one GPU on the whole global batch is the same 8 ms step."""
    run = run_with(fixture(), tmp_path / "run", reference_run(tmp_path / "ref", sweep=True), projection_config())
    rows, _ = pj.projected(run)
    eight = rows[(rows["devices"] == 8) & (rows["mode"] == "strong")].set_index("parallelism")
    assert eight.loc["data", "compute"] == pytest.approx(3e-3 + 5e-3 / 8)
    assert eight.loc["data", "efficiency"] == pytest.approx(8e-3 / (8 * eight.loc["data", "step"]))
    assert rows["overhead"].tolist() == pytest.approx([3e-3] * len(rows))
    values = STUDY.values(run)
    assert values["scaling/projection/gpu-overhead"] == "1" and values["scaling/projection/gpu-overhead-us"] == "3000"


def test_no_projection_without_records_or_section(tmp_path):
    run = run_with(fixture(), tmp_path / "run", tmp_path / "nothing", projection_config())
    values = STUDY.values(run)
    assert values["scaling/projection/gpu-ran"] == "0" and "no records" in values["scaling/projection/gpu-why"]
    bare = run_with(fixture(), tmp_path / "bare")
    assert STUDY.values(bare)["scaling/projection/gpu-why"] == "the config has no projection section"


def test_projection_figure_is_registered_and_labelled(tmp_path):
    figures = {f.name: f for f in STUDY.figures}
    assert "projection" in figures["scaling_projection"].title.lower()
    assert "not measured" in figures["scaling_projection"].title.lower()
    run = run_with(fixture(), tmp_path / "run", reference_run(tmp_path / "ref"), projection_config())
    out = analyse_study(STUDY, run, tmp_path / "scaling")
    assert (out / "figures/scaling_projection.pdf").stat().st_size > 1000
    table = (out / "tables/scaling_projection.tex").read_text()
    assert table.startswith("\\begin{table}") and "Projection, not measurement" in table
    assert read_macros(out / "macros.tex")["scaling/projection/check-cells"] == "5"
    section = (ROOT / "paper/sections/scaling.tex").read_text() + (ROOT / "paper/sections/scaling-projection.tex"
                                                                      ).read_text()
    assert "figures/scaling_projection.pdf" in section
    caption = section.split("figures/scaling_projection.pdf")[1].split("\\label")[0]
    assert "projection" in caption.lower() and "not measured" in caption.lower()


def test_projection_section_is_checked():
    bad = json.dumps(projection_config(intra="nvlink9"))
    with pytest.raises(config_module.ConfigError, match=r"projection\.intra: 'nvlink9'"):
        config_module.projection_section(bad)
    with pytest.raises(config_module.ConfigError, match=r"projection\.links\.ndr\.bandwidth_gbs"):
        links = projection_config()["links"] | {"ndr": {"bandwidth_gbs": -1, "latency_us": 5}}
        config_module.projection_section(json.dumps(projection_config(links=links)))
    assert config_module.projection_section("{}") is None


@LATEX
def test_section_builds_with_the_projection(tmp_path):
    run = run_with(fixture(), tmp_path / "run", reference_run(tmp_path / "ref"), projection_config())
    analyse_study(STUDY, run, tmp_path / "generated" / "scaling")
    text = build(tmp_path / "generated", tmp_path)
    assert "Projected, not measured" in text and "Measured against the model" in text
    assert "Projection, not measured" in text and "??" not in text.replace("[?]", "")
