"""Result records -> one tidy table: one row per cell x metric x phase. Every figure and table is drawn from it.

Times stay in seconds here; tables and text convert them for display. Besides the measured times a speed cell
gets its roofline metrics (achieved FLOP/s against its device's one roof: the best GEMM and copy any process of any
framework measured on that device, and its theoretical peak; analysis/roof.py). samples() keeps every
raw timing sample in a long table beside it, and environment() one row of versions, threads and flags per record.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import pandas as pd

from convbench.analysis.formatting import describe, last_line
from convbench.analysis.query import launch_medians
from convbench.analysis.records import LAYER_TASK, Record, Summary
from convbench.analysis.roof import roof_rows
from convbench.analysis.study import Study
from convbench.cells import PLANTED_KEYS
from convbench.data import Planted
from convbench.peak import gpu_peak
from convbench.spec import ArchSpec, conv_sizes, field

COLUMNS = ["metric", "phase", "value", "iqr", "cv", "n", "noisy", "epoch", "block", "launch"]  # the last three: where
# they apply (launch: a timed cell's launch_time rows, one per process launch)


def convolutions(arch: dict, image_size) -> str | None:
    """The network's convolutions as 'c<in>-o<filters>-k<kernel>-s<size>' words, the layer cells' naming."""
    if not image_size or arch.get("in_channels") is None:
        return None
    return " ".join(f"c{conv.in_channels}-o{conv.out_channels}-k{conv.kernel}-s{size}"
                    for conv, size in conv_sizes(ArchSpec.from_record(arch), int(image_size)))


def network_field(blocks: list[dict]) -> int:
    """The receptive field of a network's last maps (convbench.spec.field), from a record's blocks."""
    return field(ArchSpec.from_dict("record", {"blocks": list(blocks)}))


def planted_scale(data: dict) -> int | None:
    """The planted task's scale: a field narrower than this cannot see what decides the label. Of a graded task
    (data.scales), the largest: a field narrower than that misses some of its images."""
    return max(data.get("scales") or [data.get("scale")])


def planted_columns(data: dict | None) -> dict:
    """The planted task's settings as the cell drew its images (convbench.run.load_data: data.Planted, its defaults
    filled in): the scales an image may have ('5 9 13'; one for a plain task), distractor marks and pixel noise."""
    if data is None:
        return {"planted_scales": None, "planted_distractors": None, "planted_noise": None}
    settings = Planted(**{k: data[k] for k in PLANTED_KEYS if k in data})
    return {"planted_scales": " ".join(str(s) for s in settings.spans), "planted_distractors": settings.distractors,
            "planted_noise": settings.noise}


def cell_columns(record: Record) -> dict:
    cell, counts = record.cell, record.counts
    # a 1x1 stem without a pool (the C->C networks' first block) only sets the width: the block after it is the first
    arch, blocks = cell.arch, cell.spec.blocks
    stem = len(blocks) > 1 and blocks[0].kernel == 1 and blocks[0].pool == 1
    first = blocks[1 if stem else 0]
    kernel, depth = first.kernel, first.depth
    dataset = record.dataset
    return {
        "cell_id": record.cell_id,
        "study": cell.study,
        "task": cell.task,
        "framework": cell.framework,
        "engine": cell.engine,
        "setup": cell.setup,
        "device": cell.device,
        "devices": cell.devices,
        "parallelism": cell.parallelism,
        "arch": arch["name"],
        "description": describe(arch),
        "kernel": kernel,
        "depth": depth,
        "receptive_field": depth * (kernel - 1) + 1,  # of the first block's convolutions
        "field": network_field(arch["blocks"]),  # of the whole network's last maps, in input pixels
        "activation": first.activation,
        "pieces": first.pieces,
        "width": first.width,
        "maps": ", ".join(str(b.out_channels) for b in blocks),  # leaving each block
        "in_channels": arch.get("in_channels"),
        "params": counts.get("params"),
        "flops": counts.get("flops_forward"),  # per example; a layer cell's is its convolution's for the whole batch
        "flops_useful": counts.get("flops_forward_useful", counts.get("flops_forward")),  # taps inside the image
        "flops_step": counts.get("flops_step"),
        "flops_step_useful": counts.get("flops_step_useful", counts.get("flops_step")),
        "bytes_step": counts.get("bytes_step"),
        "convs": convolutions(arch, cell.image_size),
        "batch_size": cell.batch_size,
        "image_size": cell.image_size,
        "hardware": hardware(record),
        "seed": cell.seed,
        "train_fraction": cell.train_fraction,  # of the training split; speed cells: 1.0
        # train cells: 'replicate' (the framework that trains the seeds) or 'repeat' (the other framework's one seed,
        # a cross-framework check, not a replicate); None in records that predate the distinction
        "role": cell.settings.get("role"),
        "phase_method": record.timings.phase_method if record.timings else None,
        "max_iqr_ratio": cell.settings.get("max_iqr_ratio"),
        "min_seconds": cell.settings.get("min_seconds"),  # per timing loop (older records: none)
        "dataset": dataset.get("name"),
        "train_size": dataset.get("train_size"),
        "test_size": dataset.get("test_size"),
        "planted_scale": planted_scale(cell.settings.get("data") or {}) if dataset.get("name") == "planted" else None,
        **planted_columns(cell.settings.get("data") or {} if dataset.get("name") == "planted" else None),
        "started": record.started,
        "status": record.status,
        "error": last_line(record.error) if record.status == "failed" else None,
    }


def hardware(record: Record) -> str:
    """What a record's process timed on, the key of its device's roof (analysis/roof.py): the GPU model and its
    precision, or the CPU model and the threads (cores) the process used."""
    env = record.environment or {}
    if record.cell.device == "cuda":
        tf32 = bool((env.get("flags") or {}).get("tf32_cudnn"))
        return f"{env.get('device_model') or 'GPU'} ({'TF32' if tf32 else 'fp32'})"
    return f"{env.get('cpu_model') or 'CPU'}, {record.cell.threads} threads"


def peak_flops(record: Record) -> float | None:
    """The theoretical peak of the record's process (convbench.peak): as recorded beside its ceilings or, for a GPU
    record made before it was, the vendor figure for its device and precision (TF32 where cuDNN was allowed it)."""
    recorded = ((record.process.get("ceilings") or {}).get("peak_flops") or {}).get("flops")
    if recorded or record.cell.device != "cuda":
        return recorded
    tf32 = bool((record.environment.get("flags") or {}).get("tf32_cudnn"))
    return gpu_peak(record.environment.get("device_model"), tf32)["flops"]


def launch_rows(timings) -> list[dict]:
    """A timed cell's launch level: launch_time per phase and launch (that launch's median, with its IQR, CV and n;
    the 'time' row's value is the median of these), launch_start per launch (when it ran the cell), and launch_cv per
    phase, the between-launch CV of the medians."""
    rows = []
    for launch in timings.launches:
        for phase, s in {**launch.phases, **({"step": launch.step} if launch.step else {})}.items():
            rows.append(dict(zip(COLUMNS, ["launch_time", phase, s.median, s.iqr, s.cv, s.n, s.noisy, None, None,
                                           launch.launch])))
        if launch.started:  # when the launch ran this cell, in POSIX seconds: which launches ran next to which
            started = pd.Timestamp(launch.started).timestamp()
            rows.append(dict(zip(COLUMNS, ["launch_start", None, started, None, None, None, None, None, None,
                                           launch.launch])))
    for phase, s in {**timings.phases, **({"step": timings.step} if timings.step else {})}.items():
        if s.launch_cv is not None:
            rows.append(dict(zip(COLUMNS, ["launch_cv", phase, s.launch_cv, None, None, len(timings.launches)])))
    return rows


def measurement_rows(record: Record) -> list[dict]:
    """(metric, phase, value, iqr, cv, n, noisy) of an ok record."""
    rows = []

    def add(metric, phase, value, iqr=None, cv=None, n=None, noisy=None, epoch=None, block=None, launch=None):
        rows.append(dict(zip(COLUMNS, [metric, phase, value, iqr, cv, n, noisy, epoch, block, launch])))

    def add_summary(metric, phase, s: Summary):
        add(metric, phase, s.median, s.iqr, s.cv, s.n, s.noisy)

    timings, counts = record.timings, record.counts
    ceilings = record.process.get("ceilings") or {}
    if timings:
        for phase, summary in timings.phases.items():
            add_summary("time", phase, summary)
        if timings.step:
            add_summary("time", "step", timings.step)
        rows.extend(launch_rows(timings))
        if timings.phase_overhead is not None:
            add("phase_overhead", "step", timings.phase_overhead)
        if timings.first_step is not None:
            add("first_step", "step", timings.first_step)
        if record.engine.get("compile_s") is not None:
            add("compile_time", "step", record.engine["compile_s"])
        memory = record.memory  # null where the framework or device cannot measure it
        if memory.get("saved_for_backward_bytes") is not None:
            add("saved_bytes", "backward", memory["saved_for_backward_bytes"])
        if memory.get("peak_bytes") is not None:
            add("peak_bytes", "step", memory["peak_bytes"])
        for metric in ("gemm_flops", "memory_bandwidth"):
            if ceilings.get(metric):  # a ceiling is the best repeat (older records: the median)
                c = ceilings[metric]
                add(metric, "ceiling", c.get("best", c["median"]), c.get("iqr"), c.get("cv"), c.get("n"), c.get("noisy"))
        peak = peak_flops(record)
        if peak:
            add("peak_flops", "ceiling", peak)
        clocks = ((ceilings.get("peak_flops") or {}).get("clocks_hz")) or {}
        for source, hz in clocks.items():  # the clock the CPU peak took, and the ones it did not
            add("measured_clock_hz" if source.startswith("measured") else "reported_clock_hz", "ceiling", hz)
        if record.cell.task == LAYER_TASK and counts.get("flops_forward"):
            # The forward convolution, and each half of its backward, do the same FLOPs. Achieved: the taps inside
            # the image (what a library that skips the padding computes); dense: every tap of the padded kernel.
            useful = counts.get("flops_forward_useful", counts["flops_forward"])
            for phase in ("forward", "backward_input", "backward_weight"):
                if timings.phases.get(phase):
                    seconds = timings.phases[phase].median
                    add("achieved_flops", phase, useful / seconds)
                    add("achieved_flops_dense", phase, counts["flops_forward"] / seconds)
        step = timings.step
        if step and counts.get("flops_step"):  # against the device's roof once every record is in (roof.roof_rows)
            useful = counts.get("flops_step_useful", counts["flops_step"])
            add("achieved_flops", "step", useful / step.median)
            add("achieved_flops_dense", "step", counts["flops_step"] / step.median)
            if counts.get("bytes_step"):
                add("arithmetic_intensity", "step", useful / counts["bytes_step"])
    if record.epochs:
        epochs = record.epochs
        final = epochs[-1]
        for metric in ("train_accuracy", "test_accuracy", "train_loss", "test_loss"):
            if final.get(metric) is not None:
                add(metric, "final", final[metric])
        if final.get("train_accuracy") is not None and final.get("test_accuracy") is not None:
            add("gap", "final", final["train_accuracy"] - final["test_accuracy"])
        seconds = pd.Series([e.get("seconds") for e in epochs], dtype=float).dropna()
        if len(seconds):
            q1, q3 = seconds.quantile([0.25, 0.75])
            add("epoch_time", "epoch", seconds.median(), q3 - q1, seconds.std(ddof=0) / seconds.mean(), len(seconds))
        add("epochs", "final", final.get("epoch", len(epochs)))
        if record.convergence.get("converged") is not None:  # 1/0: whether the plateau criterion held before the cap
            add("converged", "final", float(bool(record.convergence["converged"])))
        if record.convergence.get("outcome") is not None:  # 1/0: whether it ended at chance (convbench.run.outcome)
            add("at_chance", "final", float(record.convergence["outcome"] == "chance"))
        criterion = record.convergence.get("criterion") or {}
        for key in ("patience", "min_delta", "min_epochs", "max_epochs"):  # the criterion itself, for the method text
            if criterion.get(key) is not None:
                add(f"criterion_{key}", "criterion", criterion[key])
        if criterion:  # 1: it watched the train accuracy; 0: the train loss (as every record before the choice did)
            add("criterion_accuracy", "criterion", float(criterion.get("monitor", "train_loss") == "train_accuracy"))
        for n, epoch in enumerate(epochs, 1):  # per epoch, for the cross-framework check (metric names of their own)
            for metric in ("test_accuracy", "test_loss"):
                if epoch.get(metric) is not None:
                    add(f"epoch_{metric}", "epoch", epoch[metric], epoch=epoch.get("epoch", n))
    import_s = record.process.get("import_s")
    if import_s is not None:
        add("import_time", "process", import_s)
    if record.wall_s is not None:
        add("wall_time", "cell", record.wall_s)
    return rows


def block_columns(record: Record) -> dict:
    """A cell's shape per block (kernels, depths, widths as '3, 3'), a train cell's recipe (optimizer, lr, momentum,
    planned_epochs) and, where a block learns, its settings per block ('-' where a block does not learn): the columns
    of the studies that compare networks block by block (their Study.columns: block_columns_for)."""
    blocks, settings = record.cell.blocks, record.cell.settings
    per_block = lambda values: ", ".join("-" if v is None else f"{v:g}" for v in values)  # noqa: E731
    out = {"kernels": per_block(b["kernel"] for b in blocks), "depths": per_block(b.get("depth", 1) for b in blocks),
           "widths": per_block(b["width"] for b in blocks)}
    if record.cell.task == "train":
        out |= {"optimizer": settings.get("optimizer", "sgd"), "lr": settings.get("lr"),
                "momentum": settings.get("momentum"), "planned_epochs": settings.get("epochs")}
    if any(b.get("init_radius") is not None or b.get("gates") for b in blocks):
        masked = [b.get("init_radius") is not None for b in blocks]
        gated = [bool(b.get("gates")) for b in blocks]
        out |= {"init_radius": per_block(b.get("init_radius") for b in blocks),
                "radius_penalty": per_block(b.get("radius_penalty", 0.0) if m else None
                                            for b, m in zip(blocks, masked)),
                "init_log_alpha": per_block(b.get("init_log_alpha", 2.0) if g else None for b, g in zip(blocks, gated)),
                "l0_penalty": per_block(b.get("l0_penalty", 0.0) if g else None for b, g in zip(blocks, gated))}
        own = settings.get("learned_lr") or {}  # the radii's and gates' own rates; the weights' where unset
        out |= {"radius_lr": own.get("log_radius", settings.get("lr")), "gate_lr": own.get("log_alpha", settings.get("lr"))}
    return out




def block_columns_for(*studies: str) -> Callable[[Record], dict]:
    """A Study.columns hook: block_columns for the cells of these studies, nothing for others."""
    return lambda record: block_columns(record) if record.cell.study in studies else {}


def tidy(records: list[Record], studies: Iterable[Study] = ()) -> pd.DataFrame:
    """One row per cell x metric x phase; studies: whose hooks add the rows and columns that only their cells have
    (Study.rows, Study.columns: the learned study's masks and gates, the scaling study's collectives)."""
    studies, rows = tuple(studies), []
    for record in records:
        cell = {**cell_columns(record), **{k: v for s in studies for k, v in s.columns(record).items()}}
        if record.status == "failed":
            rows.append({**cell, **dict.fromkeys(COLUMNS)})
        else:
            mine = [*measurement_rows(record), *(row for s in studies for row in s.rows(record))]
            rows.extend({**cell, **m} for m in mine)
    df = pd.DataFrame(rows)
    if len(df):  # every point against its device's one roof: the best ceilings any framework measured on it
        df = pd.concat([df, roof_rows(df)], ignore_index=True)
    return df.assign(noisy=df["noisy"].astype("boolean")) if len(df) else df


DERIVED = ("backward", "optimizer")  # the phases a derived cell (phase_method 'derived') gets by subtraction
SAME_CELL = ["framework", "engine", "arch", "convs", "batch_size", "image_size", "device", "devices", "parallelism"]


def resolve(df: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """df with a column `resolved` on every ok time row: whether that phase is told apart from zero, decided once here
    for every study. A direct phase is; a derived phase (a difference of two timed programs) is where every cell of
    the same configuration (SAME_CELL: the same program timed by several studies) resolves it (stats.resolved: no
    raw sample at or below zero, and the launch medians' interval above zero), so that one configuration gets one
    answer in every study."""
    from convbench.analysis.stats import resolved

    if df.empty or "phase_method" not in df:
        return df.assign(resolved=pd.Series(dtype="boolean"))
    time = (df["metric"] == "time") & (df["status"] == "ok")
    derived = time & (df["phase_method"] == "derived") & df["phase"].isin(DERIVED)
    ok = {}
    for row in df[derived].itertuples():
        x = samples.loc[(samples["cell_id"] == row.cell_id) & (samples["phase"] == row.phase), "value"]
        ok[(row.cell_id, row.phase)] = resolved(launch_medians(df, row.phase, cell_id=row.cell_id), x)
    cells = df[derived].assign(ok=[ok[(c, p)] for c, p in zip(df.loc[derived, "cell_id"], df.loc[derived, "phase"])])
    keys = [k for k in SAME_CELL if k in df] + ["phase"]
    every = cells.groupby(keys, dropna=False)["ok"].transform("all") if len(cells) else cells["ok"]
    out = pd.Series(pd.NA, index=df.index, dtype="boolean")
    out[time] = True
    out[every.index] = every.astype(bool)
    return df.assign(resolved=out)


def samples(records: list[Record]) -> pd.DataFrame:
    """Every raw timing sample: one row per cell x phase x repeat, in seconds, with the process launch it came from
    (1 where the cell ran in one launch)."""
    rows = []
    for record in records:
        timings = record.timings if record.ok else None
        if not timings:
            continue
        summaries = {**timings.phases, **({"step": timings.step} if timings.step else {})}
        for phase, summary in summaries.items():
            launch = [x.launch for x in timings.launches for _ in _launch_samples(x, phase)] or [1] * len(summary.samples)
            rows += [{"cell_id": record.cell_id, "phase": phase, "repeat": i, "value": v, "launch": n}
                     for i, (v, n) in enumerate(zip(summary.samples, launch))]
    return pd.DataFrame(rows, columns=["cell_id", "phase", "repeat", "value", "launch"])


def _launch_samples(launch, phase: str) -> tuple[float, ...]:
    s = launch.step if phase == "step" else launch.phases.get(phase)
    return s.samples if s else ()


WARNINGS_SEP = " | "


def environment(records: list[Record]) -> pd.DataFrame:
    """One row per record: its framework, its flattened environment (versions.torch, threads.intra_op, flags.layout,
    ...) and how its engine ran it (engine.optimizer, engine.precision, engine.warnings joined by WARNINGS_SEP)."""
    cells = pd.DataFrame([{"cell_id": r.cell_id, "framework": r.cell.framework, "engine": r.cell.engine,
                           "status": r.status, "started": r.started} for r in records])
    env = pd.json_normalize([r.environment for r in records])
    engines = pd.DataFrame({"engine.optimizer": [r.engine.get("optimizer") for r in records],
                            "engine.precision": [r.engine.get("precision") for r in records],
                            "engine.warnings": [WARNINGS_SEP.join(r.engine.get("warnings") or []) or None
                                                for r in records]})
    return pd.concat([cells, env, engines], axis=1)


