"""The step model (convbench.step_model) checked on this run's PyTorch CPU cells, then projected to several GPUs from
a committed reference run's single-GPU records.

What the model is fed, all measured on one device:
- per convolution (the layers study): forward, backward to the input, backward to the weights, with the
  activation's forward and backward; the first convolution's backward to the input is left out (no gradient flows
  to the images);
- the rest of a step (pools, classifier, loss, optimizer, the framework's own time): the one-device step of the
  same network (the kernel study's speed cell) less the convolutions;
- scaled linearly to the work a device does (its share of the batch, or of the filters) and, on the CPU, by the
  threads it has (a device of 1 thread is half one of 2), all but a per-step overhead per convolution that does
  not shrink with a device's share: the intercept a of the overhead study's batch sweep (step = a + b x batch,
  convbench.analysis.sweep) of the same framework's eager engine, per phase, over the swept network's convolutions;
- the collectives: on the CPU, alpha and beta fitted to the communication-alone replays the scaling cells hold
  (gloo over loopback: ring, reduce-scatter run as an all-reduce); on GPUs, the config's links (projection.links).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from convbench import step_model as model
from convbench.analysis import tidy
from convbench.analysis.layerwise import layer_times
from convbench.analysis.records import load_records
from convbench.analysis.scaling.cells import PARALLEL, cell_key, cells
from convbench.analysis.study import Run
from convbench.analysis.sweep import fits
from convbench.spec import ArchSpec

GOAL = 0.15  # |predicted / measured - 1| the model aims to stay within on the measured cells
GLOO = {"reduce_scatter": "all_reduce"}  # gloo (torch 2.13) runs a reduce-scatter as a whole all-reduce


@dataclass(frozen=True)
class Base:
    """A network's one-device computation at batch, from layer-wise times and the one-device step."""
    compute: model.Compute
    batch: int
    threads: float  # of the cells measured (CPU); NaN on GPUs
    step: float  # the one-device step measured
    source: str  # the cell that gave the step


# --- one-device computation ---------------------------------------------------------------------------------------

def _threads(env: pd.DataFrame, ids) -> float:
    column = "threads.intra_op"
    if column not in env or "cell_id" not in env:
        return float("nan")
    values = pd.to_numeric(env.loc[env["cell_id"].isin(list(ids)), column], errors="coerce").dropna()
    return float(values.median()) if len(values) else float("nan")


def _conv_times(convs: list[str], activation: str, pieces: int, framework: str, layers: pd.DataFrame):
    """(forward, backward) per convolution from the layer-wise medians, or None where a shape has no cell."""
    rows = layers[(layers["framework"] == framework) & (layers["activation"] == activation)
                  & (layers["pieces"] == pieces)]
    if rows.empty:
        return None
    rows = rows.groupby("convs").median(numeric_only=True)
    if not set(convs) <= set(rows.index):
        return None
    phase = lambda name, c: float(rows.loc[c, name]) if name in rows and pd.notna(rows.loc[c, name]) else 0.0
    forward = [phase("forward", c) + phase("activation_forward", c) for c in convs]
    backward = [phase("backward_weight", c) + phase("activation_backward", c) + (phase("backward_input", c) if i else 0)
                for i, c in enumerate(convs)]
    return forward, backward, int(rows["batch_size"].iloc[0])


def base_of(df: pd.DataFrame, env: pd.DataFrame, convs: str, activation: str, pieces: int, framework: str,
            fallback: pd.Series | None = None, overhead: bool = True) -> Base | None:
    """The one-device computation of a network (its convolutions as tidy's convs words): layer-wise times scaled to
    the one-device speed cells' batch (the batch most of them ran at), and the rest of their step (median), with
    the per-step overhead of step_overhead (overhead=False: none, every time shrinking with a device's share).
    fallback: a one-device scaling cell, used where no speed cell of the network ran (then that cell's prediction is
    exact by construction)."""
    layers = layer_times(df)
    shapes = convs.split()
    times = _conv_times(shapes, activation, pieces, framework, layers) if len(layers) else None
    if times is None:
        return None
    forward, backward, layer_batch = times
    speed = df[(df["task"] == "speed") & (df["engine"] == "eager") & (df["framework"] == framework)
               & (df["convs"] == convs) & (df["activation"] == activation) & (df["pieces"] == pieces)
               & (df["metric"] == "time") & (df["phase"] == "step")] if len(df) else df
    if len(speed):  # at one batch: the overhead study times the same network at several
        speed = speed[speed["batch_size"] == speed["batch_size"].mode().max()]
        step, batch, ids = float(speed["value"].median()), int(speed["batch_size"].iloc[0]), speed["cell_id"]
        source = "speed"
    elif fallback is not None:
        step, batch, ids, source = float(fallback["step"]), int(fallback["global_batch"]), [fallback["cell_id"]], \
            "scaling"
    else:
        return None
    scale = batch / layer_batch
    forward, backward = [f * scale for f in forward], [b * scale for b in backward]
    rest = max(0.0, step - sum(forward) - sum(backward))
    compute = model.Compute(tuple(forward), tuple(backward), rest)
    if overhead and (fixed := step_overhead(df, framework)) is not None:
        compute = compute.with_overhead(fixed[0], fixed[1], fixed[2] * len(shapes))
    return Base(compute, batch, _threads(env, ids), step, source)


def step_overhead(df: pd.DataFrame, framework: str) -> tuple[float, float, float] | None:
    """Per convolution, the per-step overhead of the forward, of the backward and of the rest of a step (optimizer
    included): the intercepts a of the overhead study's batch sweep (step = a + b x batch; a below 0 counts as 0) of
    the framework's eager engine, over the swept network's convolutions (its first network and image size where
    it swept several). None where nothing was fitted."""
    lines = fits(df)
    lines = lines[(lines["framework"] == framework) & (lines["engine"] == "eager")].dropna(subset=["a"])
    if lines.empty:
        return None
    first = lines.iloc[0]
    a = lines[(lines["arch"] == first["arch"]) & (lines["image_size"] == first["image_size"])].set_index("phase")["a"]
    a = a.clip(lower=0.0)
    forward, backward = float(a.get("forward", 0.0)), float(a.get("backward", 0.0))
    rest = max(0.0, float(a.get("step", forward + backward + a.get("optimizer", 0.0))) - forward - backward)
    convs = df.loc[(df["arch"] == first["arch"]) & df["convs"].notna(), "convs"]
    n = len(str(convs.iloc[0]).split()) if len(convs) else 1
    return forward / n, backward / n, rest / n


def overhead_of(compute: model.Compute) -> float:
    """The per-step overhead of a whole step that the model keeps whole (s)."""
    fixed = compute.overhead
    return sum(fixed[0]) + sum(fixed[1]) + fixed[2] if fixed else 0.0


def spec_from(arch_spec: str) -> ArchSpec:
    return ArchSpec.from_record(json.loads(arch_spec))


# --- the check on this run's CPU cells ------------------------------------------------------------------------------

def fit_points(df: pd.DataFrame, tidy_rows: pd.DataFrame) -> pd.DataFrame:
    """Per PyTorch CPU cell with collectives: message steps and wire bytes of the collectives one step called (gloo's
    ring, its reduce-scatter as an all-reduce) and the time of their replay alone."""
    rows = df[(df["framework"] == "torch") & (df["device"] == "cpu") & df["parallelism"].isin(PARALLEL)
              & (df["status"] == "ok") & df["comm"].notna()] if len(df) else df
    calls = tidy_rows[tidy_rows["metric"].isin(["collective_calls", "collective_bytes"])] if len(tidy_rows) else \
        tidy_rows
    out = []
    for row in rows.itertuples():
        mine = calls[calls["cell_id"] == row.cell_id]
        if mine.empty:
            continue
        steps = bytes_ = 0.0
        for op, group in mine.groupby("phase"):
            n = group.loc[group["metric"] == "collective_calls", "value"].sum()
            payload = group.loc[group["metric"] == "collective_bytes", "value"].sum()
            op = GLOO.get(op, op)
            steps += n * model.steps(op, int(row.devices))
            bytes_ += payload * model.byte_factor(op, int(row.devices))
        out.append({"cell_id": row.cell_id, "devices": int(row.devices), "steps": steps, "wire": bytes_,
                    "comm": float(row.comm)})
    return pd.DataFrame(out, columns=["cell_id", "devices", "steps", "wire", "comm"])


def loopback(run: Run, df: pd.DataFrame | None = None) -> tuple[model.Link | None, pd.DataFrame]:
    """The loopback link fitted to the replays, and the points it was fitted to."""
    df = cells(run) if df is None else df
    points = fit_points(df, run.tidy)
    if len(points) < 2 or points["steps"].nunique() < 2 and points["wire"].nunique() < 2:
        return None, points
    alpha, beta = model.fit_alpha_beta(list(zip(points["steps"], points["wire"], points["comm"])))
    return model.Link("loopback", alpha, beta), points


def predict_cell(row, base: Base, fabric: model.Fabric) -> dict:
    """One scaling cell's step as the model has it."""
    p, batch = int(row["devices"]), int(row["global_batch"])
    factor = model.share(row["parallelism"], p, batch, base.batch)
    threads = row.get("threads_per_rank")
    if np.isfinite(base.threads) and pd.notna(threads) and threads:
        factor *= base.threads / float(threads)  # a device with fewer threads is slower in proportion
    return model.step(spec_from(row["arch_spec"]), int(row["image_size"]), base.compute.scaled(factor),
                      row["parallelism"], p, batch, fabric)


def check(run: Run) -> tuple[pd.DataFrame, model.Link | None, pd.DataFrame]:
    """Every PyTorch CPU scaling cell that ran without a straggler: measured step, predicted step and the error
    (predicted / measured - 1), the per-step overhead the model kept whole and the error without it; where the miss
    lies: the model's computation against the cell's measured no-communication baseline (each device on its share,
    in the same launches) and the step's time above that baseline against the model's exposed communication; the
    loopback link and its fit points."""
    df = cells(run)
    link, points = loopback(run, df)
    rows = df[(df["framework"] == "torch") & (df["device"] == "cpu") & (df["status"] == "ok")
              & (df["straggler_ms"] == 0) & df["arch_spec"].notna()] if len(df) else df
    columns = ["cell_id", "setup", "arch", "parallelism", "mode", "devices", "batch_size", "global_batch",
               "straggler_ms", "measured", "predicted", "compute", "comm", "exposed", "error", "source", "overhead",
               "error_without_overhead", "baseline", "compute_error", "above_baseline"]
    if rows.empty or link is None:
        return pd.DataFrame(columns=columns), link, points
    fabric = model.Fabric(link, algorithms=("ring",), aliases=GLOO)
    refs = df[(df["devices"] == 1) & (df["status"] == "ok") & (df["straggler_ms"] == 0)]
    out = []
    for _, row in rows.iterrows():
        ref = refs[(refs["arch"] == row["arch"]) & (refs["framework"] == row["framework"])]
        bases = [base_of(run.tidy, run.environment, _convs(run.tidy, row["cell_id"]), _first(row, "activation"),
                         int(_first(row, "pieces")), row["framework"], ref.iloc[0] if len(ref) else None, overhead)
                 for overhead in (True, False)]
        if bases[0] is None:
            continue
        got, plain = (predict_cell(row, base, fabric) for base in bases)
        out.append({**{c: row[c] for c in columns[:9]}, "measured": float(row["step"]), "predicted": got["step"],
                    "compute": got["compute"], "comm": got["comm"], "exposed": got["exposed"],
                    "error": got["step"] / float(row["step"]) - 1, "source": bases[0].source,
                    "overhead": overhead_of(bases[0].compute),
                    "error_without_overhead": plain["step"] / float(row["step"]) - 1,
                    "baseline": float(row["base_step"]), "compute_error": got["compute"] / float(row["base_step"]) - 1,
                    "above_baseline": float(row["step"]) - float(row["base_step"])})
    return pd.DataFrame(out, columns=columns), link, points


def _cell_rows(tidy_rows: pd.DataFrame, cell_id: str) -> pd.Series:
    return tidy_rows.loc[tidy_rows["cell_id"] == cell_id].iloc[0]


def _convs(tidy_rows: pd.DataFrame, cell_id: str) -> str:
    return str(_cell_rows(tidy_rows, cell_id)["convs"])


def _first(row, column: str):
    """activation and pieces of the network's first block, from its arch_spec."""
    return getattr(spec_from(row["arch_spec"]).blocks[0], column)


def error_key(row, batches: int) -> str:
    return cell_key(row, batches).replace("scaling/", "scaling/projection/error/", 1)


# --- the projection to several GPUs ------------------------------------------------------------------------------

def reference_records(run: Run) -> tuple[pd.DataFrame, dict, str]:
    """The committed reference run's tidy rows, its networks (arch name -> ArchSpec) and why nothing is projected
    ('' when something is)."""
    config = run.projection
    if not config:
        return pd.DataFrame(), {}, "the config has no projection section"
    folder = Path(run.reference or "results/reference") / config["gpu"] / "records"
    if not folder.is_dir() or not any(folder.rglob("*.json")):
        return pd.DataFrame(), {}, f"no records in {folder}"
    records = load_records(folder)
    specs = {r.cell.arch["name"]: ArchSpec.from_record(r.cell.arch)
             for r in records if r.cell.task == "speed" and r.status == "ok"}
    return tidy.tidy(records), specs, ""


def fabric_of(config: dict) -> model.Fabric:
    links = {name: model.Link.from_config(name, entry) for name, entry in config["links"].items()}
    return model.Fabric(links[config["intra"]], config["gpus_per_node"], links[config["inter"]])


def counts_of(config: dict) -> list[tuple[int, int]]:
    """(devices, nodes): the device counts within one node, then whole nodes."""
    one = [(int(p), 1) for p in sorted(config["devices"])]
    return one + [(config["gpus_per_node"] * n, int(n)) for n in sorted(config["nodes"]) if n > 1]


def kernel_networks(ref: pd.DataFrame, specs: dict) -> dict[int, ArchSpec]:
    """Kernel size -> the plain network of that kernel (one convolution per block, ReLU) whose speed cell ran."""
    out = {}
    for name, spec in sorted(specs.items()):
        blocks = spec.blocks
        kernels = {b.kernel for b in blocks}
        if len(kernels) == 1 and all(b.depth == 1 and b.activation == "relu" and not b.learned for b in blocks):
            out.setdefault(kernels.pop(), spec)
    return dict(sorted(out.items()))


def project_network(ref: pd.DataFrame, spec: ArchSpec, config: dict) -> pd.DataFrame:
    """Projected steps of one network: per device count, parallelism and scaling mode (strong: the speed cell's
    batch as the global batch; weak: that batch per device), and efficiency = one device's throughput x devices
    over the projected throughput; plus strong scaling at every batch of projection.batches (the crossover)."""
    speed = ref[(ref["task"] == "speed") & (ref["arch"] == spec.name) & (ref["engine"] == "eager")]
    if speed.empty:
        return pd.DataFrame()
    first = speed.iloc[0]
    base = base_of(ref, pd.DataFrame(), first["convs"], "relu", 1, first["framework"])
    if base is None:
        return pd.DataFrame()
    fabric, image = fabric_of(config), int(first["image_size"])
    rows = []

    def add(p, nodes, parallelism, mode, batch):
        glob = batch * p if mode == "weak" else batch
        if parallelism == "tensor" and any(b.out_channels % p for b in spec.blocks):
            return
        compute = base.compute.scaled(model.share(parallelism, p, glob, base.batch))
        got = model.step(spec, image, compute, parallelism, p, glob, fabric)
        one = base.compute.scaled(glob / base.batch).total  # one device on the whole global batch
        rows.append({"arch": spec.name, "kernel": spec.blocks[0].kernel, "devices": p, "nodes": nodes,
                     "parallelism": parallelism, "mode": mode, "batch": batch, "global_batch": glob,
                     "step": got["step"], "compute": got["compute"], "comm": got["comm"], "exposed": got["exposed"],
                     "efficiency": one / (p * got["step"]), "one_device_step": base.step, "rest": base.compute.rest,
                     "overhead": overhead_of(base.compute)})

    for p, nodes in counts_of(config):
        for parallelism in PARALLEL:
            for mode in ("strong", "weak"):
                add(p, nodes, parallelism, mode, base.batch)
    top = max(p for p, n in counts_of(config) if n == 1)
    for batch in config["batches"]:
        for parallelism in PARALLEL:
            add(top, 1, parallelism, "sweep", int(batch))
    return pd.DataFrame(rows)


def projected(run: Run) -> tuple[pd.DataFrame, str]:
    """Every kernel network's projected rows, and why there are none ('' when there are)."""
    ref, specs, why = reference_records(run)
    if why:
        return pd.DataFrame(), why
    frames = [project_network(ref, spec, run.projection) for spec in kernel_networks(ref, specs).values()]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(), "no plain kernel network with both layer-wise and speed records"
    return pd.concat(frames, ignore_index=True), ""


def crossover(rows: pd.DataFrame) -> dict[int, int]:
    """Kernel -> the largest global batch of the sweep at which tensor parallel's projected step is shorter than
    data parallel's (0: at none)."""
    sweep = rows[rows["mode"] == "sweep"]
    out = {}
    for k, group in sweep.groupby("kernel"):
        wide = group.pivot_table(index="global_batch", columns="parallelism", values="step")
        shorter = wide.index[wide["tensor"] < wide["data"]] if set(PARALLEL) <= set(wide.columns) else []
        out[int(k)] = int(max(shorter)) if len(shorter) else 0
    return out
