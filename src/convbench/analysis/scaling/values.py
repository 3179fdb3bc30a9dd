"""The scaling study's numbers, flags and verdicts: per cell (as the old analysis keyed them) and summed up over cells
for the fixed text of paper/sections/scaling.tex. Flags are '1' or '0' (\\ifcb)."""
from __future__ import annotations

import re

import pandas as pd

from convbench.analysis import query
from convbench.analysis.formatting import (
    NUMBER_WORDS,
    X,
    count_words,
    counted,
    escape,
    flag,
    kind_phrase,
    ms,
    percent,
    plain,
    ratio,
    setup_label,
    setup_rank,
    share_words,
    sig3,
    signed,
    span,
    thousands,
    tt,
    words,
)
from convbench.analysis.scaling import crossover
from convbench.analysis.scaling import projection as pj
from convbench.analysis.scaling.cells import (
    MODE_ORDER,
    PARALLEL,
    PARALLELISM_NAMES,
    PARALLELISM_ORDER,
    cell_key,
    cells,
    comparisons,
    parallel,
    straggler_pairs,
)
from convbench.analysis.stats import (
    LEVEL,
    MARGINS,
    RESAMPLES,
    SEED,
    Kind,
    Margins,
    Outcome,
    Verdict,
    fact_verdict,
    time_verdict,
)
from convbench.analysis.study import Run

STRAGGLER_WHOLE = 0.8  # a step that grew by this fraction of the delay or more "waited" for the late device



def setup_name(setup: str) -> str:
    return setup_label(*setup.split("-", 1))


def pct(x: float) -> str:
    return f"{100 * x:.0f}"


def key_batch(row, batches: int) -> str:
    return f"/b{row.batch_size}" if batches > 1 else ""


# --- per cell (the keys of the old analysis) ---------------------------------------------------------------------

def cell_values(df: pd.DataFrame) -> dict[str, str]:
    values = {}
    batches = df["batch_size"].nunique() if len(df) else 0
    for _, row in df[df["status"] == "ok"].iterrows() if len(df) else []:
        key = cell_key(row, batches)
        values[f"{key}/step-ms"] = ms(row["step"])
        values[f"{key}/backward-ms"] = ms(row["backward"])
        if pd.notna(row["comm"]):
            values[f"{key}/comm-ms"] = ms(row["comm"])
        if pd.notna(row["efficiency"]):
            values[f"{key}/efficiency"] = ratio(row["efficiency"])
        if pd.notna(row["speedup"]):
            values[f"{key}/speedup"] = ratio(row["speedup"])
        if row["parallelism"] in PARALLEL and pd.notna(row["payload"]) and not row["straggler_ms"]:
            bkey = key.replace("scaling/", "scaling/bytes/", 1)
            values[f"{bkey}/payload"] = thousands(row["payload"])
            values[f"{bkey}/payload-model"] = thousands(row["payload_model"])
    return values


def phase_values(run: Run) -> dict[str, str]:
    """scaling/<setup>-<config>/<arch>/<phase>-ms and -iqr-ms: the medians over the cells of each setup, config and
    network (the keys every study's timed cells have)."""
    return query.time_values(run.study("scaling"))


def comparison_verdicts(v: pd.DataFrame, batches: int, margins: Margins = MARGINS) -> list[Verdict]:
    """Tensor parallel's backward and step over data parallel's, per configuration where both ran."""
    out = []
    for row in v.itertuples() if len(v) else []:
        key = f"scaling/verdict/{row.setup}/{row.arch}/{row.mode}/t{row.devices}{key_batch(row, batches)}"
        for phase in ["backward", "step"]:
            r, lo, hi, kind = (getattr(row, f"{phase}_{c}") for c in ("ratio", "lo", "hi", "kind"))
            out.append(time_verdict(f"{key}/{phase}-ratio", "tensor parallel", "data parallel", f"{phase} time", r, lo,
                                    hi, kind, margins))
    return out


def straggler_verdicts(pairs: pd.DataFrame, batches: int, margins: Margins = MARGINS) -> list[Verdict]:
    """A delayed cell's step over the same cell's without delay, decided against the time margin (whether the step
    waited for the whole delay: straggler_values)."""
    out = []
    for row in pairs[pairs["status"] == "ok"].itertuples() if len(pairs) else []:
        key = f"scaling/straggler/{row.setup}/{row.arch}/{row.parallelism}/t{row.devices}{key_batch(row, batches)}"
        out.append(time_verdict(f"{key}/ratio", "delayed step", "step without delay", "step time", row.ratio, row.lo,
                                row.hi, row.kind, margins))
    return out


def straggler_cell_values(pairs: pd.DataFrame, batches: int) -> dict[str, str]:
    values = {}
    for row in pairs[pairs["status"] == "ok"].itertuples() if len(pairs) else []:
        key = f"scaling/straggler/{row.setup}/{row.arch}/{row.parallelism}/t{row.devices}{key_batch(row, batches)}"
        values[f"{key}/added-ms"] = ms(row.added)
    return values


def bytes_verdict(df: pd.DataFrame) -> list[Verdict]:
    """The payload counted during a step against the closed-form model, over the parallel cells that counted it."""
    rows = parallel(df)
    rows = rows[rows["match"].notna() & rows["payload_model"].notna() & (rows["payload_model"] > 0)] if len(rows) \
        else rows
    if not len(rows):
        return []
    r = rows["payload"] / rows["payload_model"]
    fact = "equalled" if rows["match"].astype(bool).all() else "differed from"
    return [fact_verdict("scaling/bytes/match", "counted payload", "closed-form model", "payload bytes",
                         float(r.median()), float(r.min()), float(r.max()), fact, n=len(rows), kind=Kind.SPREAD)]


# --- summed up for the text --------------------------------------------------------------------------------------

def scope_values(df: pd.DataFrame) -> dict[str, str]:
    if not len(df):
        return {"scaling/cells": "0", "scaling/cells-ok": "0", "scaling/cells-failed": "0", "scaling/failed-text": "--",
                "scaling/device-counts": "--", "scaling/failed-any": "0", "scaling/straggler-ran": "0",
                "scaling/several-archs": "0"}
    failed = int((df["status"] != "ok").sum())
    lags = sorted(s for s in df["straggler_ms"].unique() if s)
    return {"scaling/cells": str(len(df)), "scaling/cells-ok": str(len(df) - failed),
            "scaling/cells-failed": str(failed), "scaling/failed-any": flag(failed),
            "scaling/failed-text": f"{failed} failed" if failed else "none failed",
            "scaling/device-counts": words(str(c) for c in sorted(df["devices"].unique())),
            "scaling/setups": words(escape(setup_name(s)) for s in sorted(df["setup"].unique(), key=setup_rank)),
            "scaling/archs": words(tt(a) for a in dict.fromkeys(df["arch"])),
            "scaling/several-archs": flag(df["arch"].nunique() > 1),  # Figure 5 keys them by marker
            "scaling/parallelisms": words(PARALLELISM_NAMES[p] for p in PARALLELISM_ORDER[1:]
                                          if p in set(df["parallelism"])) or "no parallelism",
            "scaling/modes": words(m for m in MODE_ORDER if m in set(df["mode"])),
            "scaling/batch-sizes": words(str(b) for b in sorted(df["batch_size"].unique())),
            "scaling/image-sizes": words(f"{s:.0f}{X}{s:.0f}" for s in sorted(df["image_size"].dropna().unique())),
            "scaling/straggler-ran": flag(lags), "scaling/delays": words(f"{s:g}" for s in lags) or "--"}


def hardware_values(df: pd.DataFrame, env: pd.DataFrame) -> dict[str, str]:
    if not len(df):
        return {"scaling/on-cpu": "0", "scaling/on-gpu": "0"}
    env = env.set_index("cell_id") if "cell_id" in env else env
    here = env.reindex(df["cell_id"])

    def column(name):
        return here[name] if name in here else pd.Series(index=here.index, dtype=object)

    cpu, gpu = (df["device"] == "cpu").to_numpy(), (df["device"] != "cpu").to_numpy()
    many = cpu & (df["devices"] > 1).to_numpy()
    torch = many & (df["framework"] == "torch").to_numpy()
    cores = sorted({int(float(c)) for c in column("cpu_count")[cpu].dropna()})
    backends = sorted({str(b) for b in column("distributed.backend")[torch].dropna()}) or ["gloo"]
    threads = sorted({int(x) for x in df.loc[torch, "threads_per_rank"].dropna()})
    return {"scaling/on-cpu": flag(cpu.any()), "scaling/on-gpu": flag(gpu.any()),
            "scaling/cpu-cores": words(str(c) for c in cores) or "--",
            "scaling/cpu-model": words(escape(m) for m in sorted(column("cpu_model")[cpu].dropna().unique()))
            or "(not recorded)",
            "scaling/torch-processes": flag(torch.any()),
            "scaling/tf-replicas": flag((many & (df["framework"] == "tensorflow").to_numpy()).any()),
            "scaling/backends": words(escape(b) for b in backends),
            "scaling/threads-per-rank": words(str(x) for x in threads) or "--",
            "scaling/gpu-models": words(escape(m) for m in sorted(column("device_model")[gpu].dropna().unique()))
            or "(not recorded)",
            "scaling/gpu-max": str(int(df.loc[gpu, "devices"].max())) if gpu.any() else "0"}


def method_values(df: pd.DataFrame) -> dict[str, str]:
    ok = df[df["status"] == "ok"] if len(df) else df
    n = ok["step_n"].dropna().astype(int) if len(ok) else pd.Series(dtype=int)
    direct = ok[ok["phase_method"] == "direct"] if len(ok) else ok
    derived = ok[ok["phase_method"] != "direct"] if len(ok) else ok
    return {"scaling/repeats": span(n, str) if len(n) else "--",
            "scaling/direct-setups": words(escape(setup_name(s)) for s in dict.fromkeys(direct["setup"])) or "--",
            "scaling/derived-setups": words(escape(setup_name(s)) for s in dict.fromkeys(derived["setup"])) or "--",
            "scaling/derived-any": flag(len(derived))}


def speedup_values(df: pd.DataFrame) -> dict[str, str]:
    rows = parallel(df)
    rows = rows[rows["speedup"].notna()] if len(rows) else rows
    values = {"scaling/speedup-any": flag(len(rows))}
    for p in PARALLEL:
        g = rows[rows["parallelism"] == p] if len(rows) else rows
        values[f"scaling/{p}/ran"] = flag(len(g))
        if len(g):
            values[f"scaling/{p}/speedup"] = span(g["speedup"], unit=X)
            values[f"scaling/{p}/efficiency"] = span(g["efficiency"])
    if not len(rows):
        return values
    above = rows[rows["speedup"] > rows["devices"] * 1.05]
    values |= {"scaling/above": str(len(above)), "scaling/above-of": str(len(rows)),
               "scaling/above-any": flag(len(above)),
               "scaling/above-ref-iqr": span(above["ref_step_iqr"] / above["ref_step"], fmt=pct) if len(above)
               else "--"}
    over = rows[rows["efficiency"].map(lambda e: pd.notna(e) and float(ratio(e)) > 1)]  # as printed
    values |= {"scaling/efficiency-above": share_words(len(over), len(rows), "parallel cell"),
               "scaling/efficiency-above-any": flag(len(over)),
               # a parallel step shorter than its own baseline: spread where the quartile range of the two reaches 1
               "scaling/efficiency-above-spread": flag(len(over) and (over["efficiency_lo"] <= 1).all())}
    if rows["efficiency"].notna().any():
        worst = rows.loc[rows["efficiency"].idxmin()]
        values |= {"scaling/efficiency-min": ratio(worst["efficiency"]),
                   "scaling/efficiency-min-times": ratio(1 / worst["efficiency"]),
                   "scaling/efficiency-min-cell": (f"{escape(setup_name(worst['setup']))}, {tt(worst['arch'])}, "
                                                   f"{worst['mode']} scaling, {PARALLELISM_NAMES[worst['parallelism']]}"
                                                   f" on {worst['devices']} devices")}
    return values


def phase_share_values(df: pd.DataFrame) -> dict[str, str]:
    rows = parallel(df)
    rows = rows[rows["comm"].notna()] if len(rows) else rows
    values = {}
    for p in PARALLEL:
        g = rows[rows["parallelism"] == p] if len(rows) else rows
        values[f"scaling/{p}/comm-ran"] = flag(len(g))
        if len(g):
            exposed = g["exposed"].dropna()
            setups = g.loc[g["exposed"].notna(), "setup"].unique()  # a derived phase leaves a setup without one
            values |= {f"scaling/{p}/comm-ms": span(g["comm"] * 1e3, sig3),
                       f"scaling/{p}/exposed-setups": words(escape(setup_label(*s.split("-", 1)))
                                                            for s in sorted(setups, key=setup_rank)) or "--",
                       f"scaling/{p}/comm-share": span(g["comm"] / g["step"], pct),
                       f"scaling/{p}/exposed-ran": flag(len(exposed)),
                       f"scaling/{p}/exposed-ms": span(exposed * 1e3, sig3) if len(exposed) else "--"}
    return values


def wire_pairs(rows: pd.DataFrame) -> pd.Series:
    """Tensor parallel's counted wire bytes per rank over data parallel's, per configuration with both."""
    keys = ["setup", "arch", "mode", "devices", "batch_size"]
    wide = rows[rows["wire"].notna()].pivot_table(index=keys, columns="parallelism", values="wire", aggfunc="first")
    if not set(PARALLEL) <= set(wide.columns):
        return pd.Series(dtype=float)
    return (wide["tensor"] / wide["data"]).dropna()


def bytes_values(df: pd.DataFrame) -> dict[str, str]:
    rows = parallel(df)
    known = rows[rows["match"].notna() & rows["payload_model"].notna() & (rows["payload_model"] > 0)] if len(rows) \
        else rows
    equal = known[known["match"].astype(bool)] if len(known) else known
    values = {"scaling/bytes-any": flag(len(known)), "scaling/bytes-compared": str(len(known)),
              "scaling/bytes-matched": str(len(equal)), "scaling/bytes-all-match": flag(len(known) == len(equal)),
              "scaling/bytes-differed": words(tt(c) for c in known.loc[~known["match"].astype(bool), "cell_id"])
              if len(known) > len(equal) else "--",
              "scaling/tf-cpu": flag(len(rows) and ((rows["framework"] == "tensorflow")
                                                    & (rows["device"] == "cpu")).any())}
    loop = rows[rows["loopback"].notna() & rows["loopback_model"].notna() & (rows["loopback_model"] > 0)] \
        if len(rows) else rows
    values["scaling/loopback-ran"] = flag(len(loop))
    if len(loop):
        values["scaling/loopback-over-gloo"] = span(loop["loopback"] / loop["loopback_model"], unit=X)
        for p, g in loop.groupby("parallelism", sort=False):
            g = g[g["wire_model"].notna() & (g["wire_model"] > 0)]
            if len(g):
                ring = g["loopback"] / (g["devices"] * g["wire_model"])
                values[f"scaling/{p}/loopback-over-ring"] = span(ring, unit=X)
                values[f"scaling/{p}/loopback-over-gloo"] = span(g["loopback"] / g["loopback_model"], unit=X)
    for p in PARALLEL:
        values.setdefault(f"scaling/{p}/loopback-over-ring", "--")
        values.setdefault(f"scaling/{p}/loopback-over-gloo", "--")
    pairs = wire_pairs(rows) if len(rows) else pd.Series(dtype=float)
    values["scaling/wire-pairs-any"] = flag(len(pairs))
    values["scaling/tensor-over-data-wire"] = span(pairs, unit=X) if len(pairs) else "--"
    values["scaling/tensor-over-data-wire-setups"] = words(  # whose wire was counted: the range's scope
        escape(setup_label(*s.split("-", 1))) for s in pairs.index.get_level_values("setup").unique()) if len(pairs) \
        else "--"
    return values


def crossover_values(df: pd.DataFrame, grid: pd.DataFrame) -> dict[str, str]:
    values = {"scaling/kernels": words(f"{k}$\\times${k}" for k in crossover.KERNELS),
              "scaling/batches": words(str(b) for b in sorted(grid["batch"].unique())) if len(grid) else
              words(str(b) for b in crossover.BATCHES),
              "scaling/crossover-devices": (words(str(t) for t in sorted(grid["devices"].unique())) if len(grid)
                                            else "--"),
              "scaling/crossover-any": flag(len(grid))}
    if grid.empty:
        return values
    rows = grid[grid["config"] == 0]
    widths, image_size = rows["widths"].iloc[0], int(rows["image_size"].iloc[0])
    batches = crossover.batches_of(rows)
    values |= {f"scaling/crossover/k{k}-batch": str(b) for k, b in batches.items()}
    ordered = [batches[k] for k in sorted(batches)]
    winners = crossover.measured_winners(df, widths, image_size, batches)
    values |= {"scaling/crossover-widths": words(str(w) for w, *_ in widths[0]),
               "scaling/crossover-image": str(image_size), "scaling/crossover-channels": str(widths[1]),
               "scaling/crossover-configs": str(grid["config"].nunique()),
               "scaling/crossover-same-t": flag(crossover.same_at_any_count(widths, image_size)),
               "scaling/crossover-grows": flag(len(ordered) > 1 and all(a < b for a, b in zip(ordered, ordered[1:]))),
               "scaling/crossover-measured": str(len(winners)),
               "scaling/crossover-tensor-fewer": str(int((winners["fewer"] == "tensor").sum())),
               "scaling/crossover-measured-text": fewer_text(int((winners["fewer"] == "tensor").sum()), len(winners))}
    return values


def fewer_text(k: int, n: int) -> str:
    """Where tensor parallel moved fewer bytes among the n measured (kernel, global batch) pairs, as a sentence
    without a zero count or a one-of-one."""
    pairs = count_words(n, "kernel and global-batch pair")
    if k == 0:
        return (f"At the {pairs} measured here, tensor parallel does not move fewer bytes" if n == 1 else
                f"At none of the {pairs} measured here does tensor parallel move fewer bytes")
    if k == n:
        return f"At {'the' if n == 1 else 'all'} {pairs} measured here, tensor parallel moves fewer bytes"
    return f"Of the {pairs} measured here, tensor parallel moves fewer bytes at {k}"


def within_text(k: int, n: int) -> str:
    """'2 of the 3 cells were', 'no cell was': how many checked cells the model predicted within the goal."""
    verb = "was" if k == 1 or n == 1 else "were"
    return f"{share_words(k, n, 'cell')} {verb}"


def straggler_values(pairs: pd.DataFrame) -> dict[str, str]:
    ok = pairs[pairs["status"] == "ok"] if len(pairs) else pairs
    values = {"scaling/straggler-compared": str(len(ok)), "scaling/straggler-pairs": flag(len(ok))}
    if not len(ok):
        return values
    share = ok["added"] * 1e3 / ok["straggler_ms"]
    values |= {"scaling/straggler-waited-all": flag((share >= STRAGGLER_WHOLE).all()),
               "scaling/straggler-waited-none": flag((share < STRAGGLER_WHOLE).all()),
               "scaling/straggler-whole": pct(STRAGGLER_WHOLE)}
    for p in PARALLEL:
        g = ok[ok["parallelism"] == p]
        values[f"scaling/{p}/straggler-ran"] = flag(len(g))
        if len(g):
            values |= {f"scaling/{p}/straggler-ratio": span(g["ratio"], unit=X),
                       f"scaling/{p}/straggler-added-ms": span(g["added"] * 1e3, sig3),
                       f"scaling/{p}/straggler-share": span(g["added"] * 1e3 / g["straggler_ms"]),
                       f"scaling/{p}/straggler-interval": f"{ratio(g['lo'].min())}--{ratio(g['hi'].max())}",
                       f"scaling/{p}/straggler-kind": kind_phrase(g["kind"])}
    return values


def comparison_values(v: pd.DataFrame, df: pd.DataFrame) -> dict[str, str]:
    values = {"scaling/compared": str(len(v)), "scaling/compared-any": flag(len(v))}
    if not len(v):
        return values
    for phase in ["backward", "step"]:
        w = v[v[f"{phase}_ratio"].notna()]  # a derived phase the data cannot tell from zero was not compared
        lost = len(v) - len(w)
        counts = {p: int((w[f"{phase}_shorter"] == p).sum()) for p in PARALLEL}
        equivalent = int(w[f"{phase}_outcome"].isin([Outcome.EQUIVALENT]).sum())
        values |= {f"scaling/{phase}/data-shorter": str(counts["data"]),
                   f"scaling/{phase}/data-shorter-share": share_words(counts["data"], len(w), "comparison"),
                   f"scaling/{phase}/tensor-shorter": str(counts["tensor"]),
                   f"scaling/{phase}/neither": str(len(w) - sum(counts.values())),
                   f"scaling/{phase}/tally": counted([("with data parallel", counts["data"]),
                                                     ("with tensor parallel", counts["tensor"]),
                                                     ("with neither", len(w) - sum(counts.values()))]),
                   f"scaling/{phase}/unresolved": f", and {NUMBER_WORDS.get(lost, lost)} not resolved" if lost else "",
                   f"scaling/{phase}/equivalent": str(equivalent),
                   f"scaling/{phase}/equivalent-of-them": f"{equivalent or 'none'} of them",
                   f"scaling/{phase}/kind": kind_phrase(v[f"{phase}_kind"]),
                   f"scaling/{phase}/ratio": span(v[f"{phase}_ratio"], unit=X),
                   f"scaling/{phase}/interval": f"{ratio(v[f'{phase}_lo'].min())}--{ratio(v[f'{phase}_hi'].max())}"}
    values["scaling/compared-devices"] = words(str(t) for t in sorted(v["devices"].unique()))
    return values


def failure_values(df: pd.DataFrame) -> dict[str, str]:
    from convbench.parallel.cells import hybrid_error  # framework-free

    tf = df[(df["framework"] == "tensorflow") & (df["parallelism"] == "tensor")] if len(df) else df
    bad = tf[tf["status"] != "ok"] if len(tf) else tf
    values = {"scaling/tf-tensor-cells": str(len(tf)), "scaling/tf-tensor-failed": str(len(bad)),
              "scaling/tf-tensor-failed-any": flag(len(bad)),
              "scaling/tf-tensor-errors": str(bad["error"].fillna("").nunique()) if len(bad) else "0",
              "scaling/tf-tensor-error": plain(bad["error"].dropna().iloc[0]) if bad["error"].notna().any() else "--"}
    hybrid = df[df["parallelism"] == "hybrid"] if len(df) else df
    failed = hybrid[hybrid["status"] != "ok"] if len(hybrid) else hybrid
    if failed["error"].notna().any() if len(failed) else False:
        error = re.sub(r"^rank \d+: ", "", failed["error"].dropna().iloc[0])
    else:
        e = hybrid_error()
        error = f"{type(e).__name__}: {e}"
    values |= {"scaling/hybrid-cells": str(len(hybrid)), "scaling/hybrid-failed": str(len(failed)),
               "scaling/hybrid-ran": flag(len(hybrid)), "scaling/hybrid-error": plain(error)}
    return values


def tf_version(df: pd.DataFrame, env: pd.DataFrame) -> dict[str, str]:
    column = "versions.tensorflow"
    ids = df.loc[(df["framework"] == "tensorflow") & (df["status"] != "ok"), "cell_id"] if len(df) else []
    versions = sorted({str(v) for v in env.loc[env["cell_id"].isin(ids), column].dropna()}) \
        if column in env and len(ids) else []
    return {"scaling/tf-version": words(escape(v) for v in versions) or "--"}


def check_values(run: Run) -> dict[str, str]:
    """The model against this run's PyTorch CPU cells: the fitted loopback link, the error per cell (percent,
    predicted over measured less 1) and how many cells stay within the goal."""
    checked, link, points = pj.check(run)
    values = {"scaling/projection/goal": f"{100 * pj.GOAL:.0f}", "scaling/projection/check-ran": flag(len(checked)),
              "scaling/projection/fit-points": str(len(points)), "scaling/projection/fit-ran": flag(link)}
    if link is not None:
        values |= {"scaling/projection/alpha-us": sig3(link.alpha * 1e6) if link.alpha else "0",
                   "scaling/projection/beta-gbs": sig3(1e-9 / link.beta) if link.beta else "--"}
    if not len(checked):
        return values
    error = checked["error"].abs()
    within = int((error <= pj.GOAL).sum())
    batches = checked["batch_size"].nunique()
    values |= {"scaling/projection/check-cells": str(len(checked)), "scaling/projection/check-within": str(within),
               "scaling/projection/check-all-within": flag(within == len(checked)),
               "scaling/projection/check-max": f"{100 * error.max():.0f}",
               "scaling/projection/check-median": f"{100 * error.median():.0f}",
               "scaling/projection/check-from-speed": flag((checked["source"] == "speed").all())}
    plain = checked["error_without_overhead"].abs()
    values |= {"scaling/projection/overhead-ms": ms(checked["overhead"].median()),
               "scaling/projection/check-within-without": str(int((plain <= pj.GOAL).sum())),
               "scaling/projection/check-within-without-text": within_text(int((plain <= pj.GOAL).sum()), len(plain)),
               "scaling/projection/check-median-without": f"{100 * plain.median():.0f}",
               "scaling/projection/check-max-without": f"{100 * plain.max():.0f}"}
    several = checked[checked["parallelism"].isin(PARALLEL)]
    values |= {f"scaling/projection/{k}": "--" for k in ("compute-error-max", "above-baseline-ms", "model-comm-ms")}
    values["scaling/projection/comm-misses"] = flag(False)
    if len(several):  # where the miss lies: the computation (against the baseline) or the communication
        values |= {"scaling/projection/compute-error-max": f"{100 * several['compute_error'].abs().max():.0f}",
                   "scaling/projection/above-baseline-ms": span(several["above_baseline"] * 1e3, fmt=sig3),
                   "scaling/projection/model-comm-ms": span(several["exposed"] * 1e3, fmt=sig3),
                   "scaling/projection/comm-misses": flag(
                       (abs(several["compute_error"]) <= pj.GOAL).all()
                       and (several["above_baseline"] > several["exposed"]).all())}
    for _, row in checked.iterrows():
        values[pj.error_key(row, batches)] = signed(percent(row["error"]))
    for p in PARALLEL:
        g = checked[checked["parallelism"] == p]
        values[f"scaling/projection/{p}/check-error"] = span(g["error"] * 100, fmt=lambda x: f"{x:.0f}") \
            if len(g) else "--"
    return values


def projected_values(run: Run) -> dict[str, str]:
    """The projection to several GPUs: links, device counts, the efficiency at the largest count of one node and of
    whole nodes per kernel size, parallelism and mode, and the crossover batch per kernel size."""
    rows, why = pj.projected(run)
    values = {"scaling/projection/gpu-ran": flag(len(rows)), "scaling/projection/gpu-why": escape(why) or "--"}
    config = run.projection or {}
    if config:
        intra, inter = config["links"][config["intra"]], config["links"][config["inter"]]
        values |= {"scaling/projection/gpu": escape(config["gpu"]), "scaling/projection/per-node": str(
            config["gpus_per_node"]), "scaling/projection/intra": escape(config["intra"]),
            "scaling/projection/inter": escape(config["inter"]),
            "scaling/projection/intra-gbs": f"{intra['bandwidth_gbs']:g}",
            "scaling/projection/intra-us": f"{intra['latency_us']:g}",
            "scaling/projection/inter-gbs": f"{inter['bandwidth_gbs']:g}",
            "scaling/projection/inter-us": f"{inter['latency_us']:g}",
            "scaling/projection/devices": words(str(p) for p, _ in pj.counts_of(config))}
    if not len(rows):
        return values
    top = int(rows.loc[rows["nodes"] == 1, "devices"].max())
    most = int(rows["devices"].max())
    values |= {"scaling/projection/top": str(top), "scaling/projection/most": str(most),
               "scaling/projection/nodes-most": str(int(rows["nodes"].max())),
               "scaling/projection/kernels": words(f"{k}$\\times${k}" for k in sorted(rows["kernel"].unique())),
               "scaling/projection/batch": str(int(rows.loc[rows["mode"] == "strong", "batch"].iloc[0])),
               "scaling/projection/gpu-overhead-us": sig3(1e6 * rows["overhead"].median()),
               "scaling/projection/gpu-overhead": flag(rows["overhead"].max() > 0)}
    grid = rows[rows["mode"] != "sweep"]
    for (k, p, par, mode), g in grid.groupby(["kernel", "devices", "parallelism", "mode"]):
        if p in (top, most):
            values[f"scaling/projection/k{k}/{par}-{mode}/t{p}/efficiency"] = ratio(g["efficiency"].iloc[0])
    for (par, mode, p), g in grid.groupby(["parallelism", "mode", "devices"]):
        for name, count in (("top", top), ("most", most)):
            if p == count:  # over the kernel sizes, at the most GPUs of one node and of all nodes
                values[f"scaling/projection/{par}-{mode}/{name}/efficiency"] = span(g["efficiency"])
    cross = pj.crossover(rows)
    values |= {f"scaling/projection/k{k}/crossover": str(b) if b else "none" for k, b in cross.items()}
    values["scaling/projection/crossover-any"] = flag(any(cross.values()))
    values["scaling/projection/crossovers"] = words(f"{b or 'none'} for {k}$\\times${k}" for k, b in cross.items())
    values["scaling/projection/sweep"] = f"{min(config['batches'])}--{max(config['batches'])}"
    return values


def analysis(run: Run) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(cells, tensor-over-data comparisons, straggler pairs, crossover grid) of a run."""
    df = cells(run)
    return df, comparisons(df, run), straggler_pairs(df, run), crossover.grid(df)


def values(run: Run) -> dict[str, str]:
    df, v, pairs, grid = analysis(run)
    batches = df["batch_size"].nunique() if len(df) else 0
    launches = query.launch_count(run.tidy[run.tidy["task"] == "scaling"]) if len(run.tidy) else 1
    return {**scope_values(df), **hardware_values(df, run.environment), **method_values(df),
            **speedup_values(df), **phase_share_values(df), **bytes_values(df), **crossover_values(df, grid),
            **straggler_values(pairs), **comparison_values(v, df), **failure_values(df),
            **tf_version(df, run.environment), **check_values(run), **projected_values(run),
            "scaling/bootstrap-resamples": str(RESAMPLES), "scaling/bootstrap-seed": str(SEED),
            "scaling/bootstrap-level": f"{LEVEL * 100:.0f}",
            "scaling/launches": str(launches), "scaling/by-launch": flag(launches > 1),
            **cell_values(df), **straggler_cell_values(pairs, batches), **phase_values(run)}


def verdicts(run: Run) -> list[Verdict]:
    df, v, pairs, _ = analysis(run)
    batches = df["batch_size"].nunique() if len(df) else 0
    return [*comparison_verdicts(v, batches, run.margins), *straggler_verdicts(pairs, batches, run.margins),
            *bytes_verdict(df)]


def ran(run: Run) -> bool:
    return len(cells(run)) > 0
