"""Result records -> one tidy table: one row per cell x metric x phase. Every figure and table is drawn from it.

Times stay in seconds here; tables and text convert them for display. Besides the measured times a speed cell
gets its roofline metrics (achieved FLOP/s against its device's one roof: the best GEMM and copy any process of any
framework measured on that device, and its theoretical peak; analysis/roof.py). samples() keeps every
raw timing sample in a long table beside it, and environment() one row of versions, threads and flags per record.
"""
from __future__ import annotations

import json

import pandas as pd

from convbench.analysis.formatting import describe, last_line, setup_label, setup_rank
from convbench.analysis.records import LAYER_TASK, Record, Summary
from convbench.analysis.roof import roof_rows
from convbench.analysis.stats import LEVEL, t_interval
from convbench.cells import PLANTED_KEYS
from convbench.data import Planted
from convbench.peak import gpu_peak
from convbench.spec import ArchSpec, conv_sizes, covering_field, field

COLUMNS = ["metric", "phase", "value", "iqr", "cv", "n", "noisy", "epoch", "block", "launch"]  # the last three: where
# they apply (launch: a timed cell's launch_time rows, one per process launch)


def by_setup(column: pd.Series) -> pd.Series:
    """A sort key: the setup column in setup_rank order, other columns as they are."""
    return column.map(setup_rank) if column.name == "setup" else column


def setup_labels(summary: pd.DataFrame) -> pd.Series:
    """'PyTorch eager' per row, plus the config (device, batch) where the rows hold more than one."""
    label = pd.Series([setup_label(f, e) for f, e in zip(summary["framework"], summary["engine"])], index=summary.index)
    return label + " " + summary["config"] if summary["config"].nunique() > 1 else label


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
        **study_columns(record),
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


def launch_medians(df: pd.DataFrame, phase: str, **where) -> pd.Series:
    """One phase's launch-level medians, indexed by launch: the launch_time rows of the ok cells matching `where`
    (column=value; config as with_config makes it), the median over those cells (seeds) within each launch. Empty
    where the cells ran in one launch."""
    rows = df[(df["metric"] == "launch_time") & (df["phase"] == phase) & (df["status"] == "ok")]
    rows = with_config(rows) if "config" in where else rows
    for column, value in where.items():
        rows = rows[rows[column].isin(value) if isinstance(value, (list, tuple, set, pd.Series)) else
                    rows[column] == value]
    return rows.groupby("launch")["value"].median() if len(rows) else pd.Series(dtype=float)


def launch_count(df: pd.DataFrame) -> int:
    """The fewest launches any timed cell of df ran in: what every interval from launch-level medians rests on at
    least (1 where no cell has launch rows)."""
    rows = df[df["metric"] == "launch_time"] if len(df) and "launch" in df else df.iloc[:0]
    return int(rows.groupby("cell_id")["launch"].nunique().min()) if len(rows) else 1


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
    return rows + learned_rows(record) + scaling_rows(record)


LEARNING_STUDIES = ("learned", "tracking")  # whose cells learn their kernel sizes or filter counts


def learned_rows(record: Record) -> list[dict]:
    """The learned study's: per epoch and block, what the masks and gates kept; what crop and prune kept.

    radius, open_maps (phase epoch; epoch 0 is the initialisation, read from the spec; open maps counted with the
    test-time gate); kept_kernel, kept_maps, shrunk_width (phase shrunk, per block); shrunk_params, shrunk_flops,
    shrunk_test_accuracy, max_logit_difference (phase shrunk); step_time (phase learned or shrunk: a training step of
    the masked or gated network and of the shrunk one, at the training input).
    """
    from convbench.learned import test_gate

    if record.cell.study not in LEARNING_STUDIES or not record.epochs:
        return []
    blocks, rows = record.cell.blocks, []

    def add(metric, phase, value, epoch=None, block=None, s: Summary | None = None):
        rows.append(dict(zip(COLUMNS, [metric, phase, value, *([s.iqr, s.cv, s.n, s.noisy] if s else [None] * 4),
                                       epoch, block])))

    for i, b in enumerate(blocks):
        if b.get("init_radius") is not None:
            add("radius", "epoch", float(b["init_radius"]), 0, i)
        if b.get("gates"):
            maps = b["width"] // b.get("pieces", 1)
            add("open_maps", "epoch", float(int(test_gate(b.get("init_log_alpha", 2.0)) > 0) * maps), 0, i)
    for n, epoch in enumerate(record.epochs, 1):
        for key, value in (epoch.get("learned") or {}).items():
            where, _, quantity = key.rpartition(".")
            if where.startswith("blocks.") and quantity in ("radius", "open_maps") and value is not None:
                add(quantity, "epoch", float(value), epoch.get("epoch", n), int(where.split(".")[1]))
    shrunk = record.learned
    for i, kept in enumerate(shrunk.get("kept") or []):
        add("kept_kernel", "shrunk", kept["kernel"], block=i)
        add("kept_maps", "shrunk", kept["maps"], block=i)
    for i, b in enumerate((shrunk.get("shrunk_arch") or {}).get("blocks") or []):
        add("shrunk_width", "shrunk", b["width"], block=i)
    if (shrunk.get("shrunk_arch") or {}).get("blocks"):
        add("shrunk_field", "shrunk", network_field(shrunk["shrunk_arch"]["blocks"]))
    scale = (record.cell.settings.get("data") or {}).get("scale")
    if scale is not None and (record.cell.settings.get("data") or {}).get("dataset") == "planted":
        covering = covering_field(ArchSpec.from_dict("record", {"blocks": list(blocks)}), scale)
        if covering is not None:
            add("covering_field", "shrunk", covering)
    if record.convergence.get("learning_started_epoch") is not None:  # the second phase's first epoch
        add("learning_started_epoch", "final", record.convergence["learning_started_epoch"])
    for metric, key in [("shrunk_params", "params"), ("shrunk_flops", "flops_forward"),
                        ("shrunk_test_accuracy", "test_accuracy"), ("max_logit_difference", "max_logit_difference")]:
        if shrunk.get(key) is not None:
            add(metric, "shrunk", shrunk[key])
    for net in ("learned", "shrunk"):
        if (s := Summary.read((shrunk.get("step") or {}).get(net))) is not None:
            add("step_time", net, s.median, s=s)
    return rows


def _learned_columns(record: Record) -> dict:
    """The kernel and learned studies' cells: shape per block (kernels, depths, widths as '3, 3'), a train cell's
    recipe (optimizer, lr, momentum, planned_epochs) and, where a block learns, its settings per block ('-' where a
    block does not learn)."""
    blocks, settings = record.cell.blocks, record.cell.settings
    if record.cell.study not in ("kernel", *LEARNING_STUDIES):
        return {}
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
    return out


def scaling_rows(record: Record) -> list[dict]:
    """Several devices: communication replayed alone (comm_time), the step without it (baseline_time, per phase and
    step), exposed communication, and bytes (payload_bytes, wire_bytes, loopback_bytes: phase measured or model;
    payload_match 1/0; collective_calls and collective_bytes per op, phase the op)."""
    timings, comm = record.timings, record.communication
    rows = []

    def add(metric, phase, value, s: Summary | None = None):
        rows.append(dict(zip(COLUMNS, [metric, phase, value, s.iqr, s.cv, s.n, s.noisy, None, None] if s else
                             [metric, phase, value, None, None, None, None, None, None])))

    if timings and timings.communication:
        add("comm_time", "step", timings.communication.median, timings.communication)
    baseline = (timings.baseline or {}) if timings else {}
    for phase, raw in {**(baseline.get("phases") or {}), "step": baseline.get("step")}.items():
        if (s := Summary.read(raw)) is not None:
            add("baseline_time", phase, s.median, s)
    if timings and timings.exposed_communication is not None:
        add("exposed_communication", "step", timings.exposed_communication)
    measured, model = comm.get("measured") or {}, comm.get("model") or {}
    for metric, key in (("payload_bytes", "payload_bytes"), ("wire_bytes", "wire_bytes_per_rank")):
        for phase, source in (("measured", measured), ("model", model)):
            if source.get(key) is not None:
                add(metric, phase, source[key])
    for phase, key in (("measured", "loopback_bytes_per_step"), ("model", "loopback_model_bytes_per_step")):
        if comm.get(key) is not None:
            add("loopback_bytes", phase, comm[key])
    if comm.get("payload_matches_model") is not None:
        add("payload_match", "step", float(bool(comm["payload_matches_model"])))
    calls = measured.get("calls") or []  # per op: how many collectives one step called, and their payload
    for op in dict.fromkeys(c["op"] for c in calls):
        add("collective_calls", op, float(sum(c["op"] == op for c in calls)))
        add("collective_bytes", op, float(sum(c["bytes"] for c in calls if c["op"] == op)))
    return rows


def _scaling_columns(record: Record) -> dict:
    """A scaling cell's descriptors: scaling mode, straggler delay, global batch, threads per rank, and the arch as
    compact JSON (the byte model rebuilds its ArchSpec from it)."""
    cell = record.cell
    if cell.task != "scaling":
        return {}
    mode = cell.settings.get("scaling", "strong")
    global_batch = record.counts.get("global_batch") or cell.batch_size * (cell.devices if mode == "weak" else 1)
    return {"scaling_mode": mode, "straggler_ms": float(cell.settings.get("straggler_ms") or 0.0),
            "global_batch": int(global_batch), "threads_per_rank": record.counts.get("threads_per_rank"),
            "arch_spec": json.dumps(cell.arch, sort_keys=True, separators=(",", ":"))}


def study_columns(record: Record) -> dict:
    """Cell columns that only some studies have (NaN elsewhere), appended after the common ones."""
    return {**_learned_columns(record), **_scaling_columns(record)}


def tidy(records: list[Record]) -> pd.DataFrame:
    rows = []
    for record in records:
        cell = cell_columns(record)
        if record.status == "failed":
            rows.append({**cell, **dict.fromkeys(COLUMNS)})
        else:
            rows.extend({**cell, **m} for m in measurement_rows(record))
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


def is_resolved(df: pd.DataFrame, cell_id: str, phase: str) -> bool:
    """What resolve decided for one cell's phase (True where no ok time row says otherwise)."""
    rows = df.loc[(df["cell_id"] == cell_id) & (df["phase"] == phase) & (df["metric"] == "time"), "resolved"] \
        if "resolved" in df else []
    return not any(r is False or r == False for r in rows if pd.notna(r))  # noqa: E712 (read back from csv)


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


# A "setup" is what runs the cell (framework + engine); a "config" is where and how big (devices, batch); a train
# cell's data set keeps its runs apart from another data set's (empty for cells that train on none).
SUMMARY_KEYS = ["study", "task", "setup", "framework", "engine", "config", "dataset", "arch", "train_fraction"]
ARCH_ORDER = ["receptive_field", "depth", "pieces", "width", "arch"]


def datasets(df: pd.DataFrame) -> pd.Series:
    """Each row's data set, '' where it has none (a timed cell): a key that groups and pivots keep."""
    found = df["dataset"] if "dataset" in df else pd.Series(None, index=df.index)
    return found.astype(object).where(found.notna(), "")


def with_config(df: pd.DataFrame) -> pd.DataFrame:
    config = df["device"].astype(str) + df["devices"].astype(str) + "-" + df["parallelism"].astype(str) + "-b" + df["batch_size"].astype(str)
    return df.assign(config=config)


def summarise(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Median over the cells (seeds) of each study x setup x config x arch x phase, for one metric.

    iqr is the median of the cells' own IQRs (repeat-to-repeat spread), seeds the number of seeds, noisy whether
    any of the cells was flagged noisy.
    """
    rows = with_config(df[(df["status"] == "ok") & (df["metric"] == metric)])
    if rows.empty:
        return rows.assign(seeds=[])
    first = {c: (c, "first") for c in ["description", "kernel", "depth", "receptive_field", "activation", "pieces",
                                       "width", "maps", "params", "flops", "flops_useful", "in_channels", "image_size",
                                       "train_size", "test_size", "batch_size", "convs", "flops_step", "bytes_step",
                                       "phase_method", "max_iqr_ratio"]}
    out = (rows.groupby(SUMMARY_KEYS + ["phase"], sort=False, dropna=False)
           .agg(value=("value", "median"), iqr=("iqr", "median"), n=("n", "sum"), seeds=("seed", "nunique"),
                noisy=("noisy", "max"), **first)
           .reset_index())
    out = out.sort_values(["study", *ARCH_ORDER, "setup", "config", "train_fraction"], kind="stable", key=by_setup)
    return out.reset_index(drop=True)


def full_data(df: pd.DataFrame) -> pd.DataFrame:
    """The rows at the largest training fraction of their study and task (the whole training split, unless a study
    trained on less), per data set: summaries over seeds never mix training-set sizes."""
    largest = df.groupby(["study", "task", datasets(df)])["train_fraction"].transform("max")
    return df[df["train_fraction"] == largest]


def seed_summary(df: pd.DataFrame, metric: str, level: float = LEVEL) -> pd.DataFrame:
    """Mean over seeds, the half-width of its t interval (ci) and the number of seeds, per study x setup x config x
    arch x training fraction x phase, for one metric."""
    rows = with_config(df[(df["status"] == "ok") & (df["metric"] == metric)])
    keys = SUMMARY_KEYS + ["phase"]
    out = [dict(zip(keys, k)) | dict(zip(["mean", "ci", "seeds"], t_interval(g["value"], level)))
           for k, g in rows.groupby(keys, sort=False, dropna=False)]
    return pd.DataFrame(out, columns=[*keys, "mean", "ci", "seeds"])


def slugs(summary: pd.DataFrame) -> pd.Series:
    """The <setup> part of a macro key for each row of a summary: the setup, plus its config where the study's task
    ran in more than one config, plus its data set where the study's task trained on more than one."""
    many, sets = (summary.groupby(["study", "task"])[c].transform("nunique") > 1 for c in ("config", "dataset"))
    slug = summary["setup"].where(~many, summary["setup"] + "-" + summary["config"])
    return slug.where(~sets, slug + "-" + datasets(summary))


def time_values(df: pd.DataFrame) -> dict[str, str]:
    """Median time of every phase as macro values '<study>/<setup>/<arch>/<phase>-ms', in ms, and its IQR as
    '...-iqr-ms' to the median's precision; df: the tidy rows of the studies wanted."""
    from convbench.analysis.formatting import decimals, ms

    times = summarise(df, "time") if len(df) else pd.DataFrame()
    if times.empty:
        return {}
    values = {}
    for row in times.assign(slug=slugs(times)).itertuples():
        base = f"{row.study}/{row.slug}/{row.arch}/{row.phase}"
        values[f"{base}-ms"] = ms(row.value)
        if pd.notna(row.iqr):
            values[f"{base}-iqr-ms"] = f"{row.iqr * 1e3:.{decimals(row.value * 1e3)}f}"  # the median's precision
    return values


def accuracy_values(df: pd.DataFrame) -> dict[str, str]:
    """Median over seeds, at each study's largest training fraction, of test and train accuracy (percent) and the
    train/test gap (points) as macro values '<study>/<setup>/<arch>/test-accuracy' (train-accuracy, gap); df: the
    tidy rows of the studies wanted."""
    from convbench.analysis.formatting import percent

    values = {}
    for metric in ("test_accuracy", "train_accuracy", "gap"):
        summary = summarise(full_data(df), metric) if len(df) else pd.DataFrame()
        for row in (summary.assign(slug=slugs(summary)).itertuples() if len(summary) else []):
            values[f"{row.study}/{row.slug}/{row.arch}/{metric.replace('_', '-')}"] = percent(row.value)
    return values


# ---- replicates, convergence and the cross-framework repeat (train cells) ------------------------------------

REPEAT = "repeat"  # cell.settings.role of the other framework's single seed


def replicates(df: pd.DataFrame) -> pd.DataFrame:
    """The rows that count as replicates: every row but a 'repeat' cell's (a repeat checks the frameworks against
    each other on one seed; its accuracy equals the replicate's up to numerical drift, so it is no new draw)."""
    return df[df["role"] != REPEAT] if len(df) and "role" in df else df


def per_seed(df: pd.DataFrame, metric: str, keys=("setup", "config", "dataset", "train_fraction"), phase: str = "final"):
    """A metric per seed, one column per arch, one row per (keys..., seed): what paired differences are taken from.
    Replicate cells of status ok only. Pairs never cross data sets: keys hold the data set, or a key made from it."""
    rows = with_config(replicates(df[(df["status"] == "ok") & (df["metric"] == metric) & (df["phase"] == phase)]))
    if rows.empty:
        return pd.DataFrame()
    rows = rows.assign(dataset=datasets(rows))
    return rows.pivot_table(index=[*keys, "seed"], columns="arch", values="value", aggfunc="first")


def convergence(df: pd.DataFrame) -> pd.DataFrame:
    """One row per ok train cell: study, arch, setup, role, seed, train_fraction, epochs run, converged (1, 0, or
    NaN where the record does not say: it predates the plateau criterion) and at_chance (1, 0 or NaN: ended at
    chance, convbench.run.outcome; such a run is not converged)."""
    columns = ["cell_id", "study", "arch", "setup", "framework", "engine", "role", "seed", "train_fraction"]
    cells = df[(df["task"] == "train") & (df["status"] == "ok")] if len(df) else df
    if cells.empty:
        return pd.DataFrame(columns=[*columns, "epochs", "converged", "at_chance"])
    out = cells.drop_duplicates("cell_id")[columns].set_index("cell_id")
    for metric in ("epochs", "converged", "at_chance"):
        found = cells[cells["metric"] == metric].set_index("cell_id")["value"]
        out[metric] = found.reindex(out.index)
    return out.reset_index()


def converged_pairs(df: pd.DataFrame, keys=("setup", "config", "dataset", "train_fraction")) -> pd.DataFrame:
    """per_seed of 'converged' with a missing record read as converged (records before the criterion): 1/0 per
    (keys..., seed) x arch, for masking paired differences."""
    found = per_seed(df, "converged", keys)
    cells = per_seed(df, "epochs", keys)
    return found.reindex_like(cells).fillna(1.0) if len(cells) else cells


def repeat_check(df: pd.DataFrame) -> pd.DataFrame:
    """Every repeat cell against the replicate of the same study, arch, seed and training fraction in the other
    framework: the largest per-epoch difference (absolute, over the epochs both ran) in test accuracy and in test
    loss, and the epochs compared."""
    columns = ["study", "arch", "seed", "train_fraction", "repeat", "replicate", "epochs", "accuracy", "loss"]
    rows = df[df["metric"].isin(["epoch_test_accuracy", "epoch_test_loss"]) & (df["status"] == "ok")] if len(df) \
        and "role" in df else pd.DataFrame()
    if rows.empty or not (rows["role"] == REPEAT).any():
        return pd.DataFrame(columns=columns)
    keys = ["study", "arch", "seed", "train_fraction"]
    out = []
    for key, g in rows.groupby(keys, sort=False):
        repeat, other = g[g["role"] == REPEAT], g[g["role"] != REPEAT]
        for setup, r in repeat.groupby("setup", sort=False):
            o = other[other["framework"] != r["framework"].iloc[0]]
            if o.empty:
                continue
            a = r.pivot_table(index="epoch", columns="metric", values="value")
            b = o[o["setup"] == o["setup"].iloc[0]].pivot_table(index="epoch", columns="metric", values="value")
            diff = (a - b).abs().dropna(how="all")
            out.append([*key, setup, o["setup"].iloc[0], len(diff),
                        *(diff[m].max() if m in diff else float("nan") for m in ("epoch_test_accuracy",
                                                                                 "epoch_test_loss"))])
    return pd.DataFrame(out, columns=columns)
