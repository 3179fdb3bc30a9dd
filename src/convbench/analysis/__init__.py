"""Result records -> one tidy table -> each study's figures, tables and values -> the paper PDF.

    records (records.py) -> tidy.csv, samples.csv, environment.csv (tidy.py)
    tidy.csv -> generated/<study>/{figures/*.pdf, tables/*.tex, macros.tex, verdicts.json}, one study at a time
    paper/ + generated/*/ -> paper.pdf (latex.py)

The studies and everything they draw are declared in registry.py. Imports neither torch nor tensorflow.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from convbench.analysis import tidy
from convbench.analysis.formatting import KIND_PHRASES, beside, flag, percent, ratio, signed, verdict_word
from convbench.analysis.latex import LatexError, build_pdf, write_macros
from convbench.analysis.records import RecordError, load_records
from convbench.analysis.stats import MARGINS, Margins, Verdict
from convbench.analysis.study import Run, Study
from convbench.files import replacing, write_text

__all__ = ["analyse", "analyse_study", "build_pdf", "KeyClash", "LatexError", "RecordError", "read_run",
           "write_tidy"]

TIDY, SAMPLES, ENVIRONMENT = "tidy.csv", "samples.csv", "environment.csv"
REFERENCE = Path("results/reference")


def write_tidy(records_dirs, out_dir) -> Path:
    """The records under records_dirs as tidy.csv, samples.csv and environment.csv in out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from convbench.analysis.registry import STUDIES

    records = load_records(records_dirs)
    samples = tidy.samples(records)
    with replacing(out / TIDY, out / SAMPLES, out / ENVIRONMENT) as (tidy_csv, samples_csv, environment_csv):
        table = tidy.tidy(records, STUDIES.values())  # each study's hooks add the rows and columns of its own cells
        tidy.resolve(table, samples).to_csv(tidy_csv, index=False)               # the three replace the previous
        samples.to_csv(samples_csv, index=False)                                 # ones together, or none does
        tidy.environment(records).to_csv(environment_csv, index=False)
    return out


def read_run(generated, command: str | None = None, reference=REFERENCE, projection: dict | None = None,
             margins: Margins = MARGINS) -> Run:
    """The tidy tables a run published, as every study reads them; command defaults to the one the records hold."""
    generated = Path(generated)
    for name in (TIDY, SAMPLES, ENVIRONMENT):
        if not (generated / name).exists():
            raise RecordError(f"{generated / name}: missing; write the tidy table first (convbench tidy)")
    df = pd.read_csv(generated / TIDY, low_memory=False)  # one dtype per column, read whole
    if len(df):
        df = df.assign(noisy=df["noisy"].astype("boolean"))
    env = pd.read_csv(generated / ENVIRONMENT, dtype=str, keep_default_na=False).replace("", None)
    if command is None and "command" in env:
        command = "; ".join(sorted({str(c) for c in env["command"].dropna()})) or None
    return Run(df, pd.read_csv(generated / SAMPLES), env, command, Path(reference) if reference else None,
               projection, margins)


def verdict_values(v: Verdict) -> dict[str, str]:
    """A verdict's macros: estimate, -lo, -hi, -word (its outcome's words) and -kind (how its interval was computed)."""
    fmt = ratio if v.unit == "ratio" else (lambda x: signed(percent(x)))  # points: a minus sign, not a hyphen
    edges = ((v.margin, 1 / v.margin) if v.unit == "ratio" and v.margin > 1 else
             (v.margin, -v.margin) if v.unit == "points" else ())

    def end(x: float) -> str:  # an end that would print as a margin it is not gets the digits that show its side
        if all(x == e or fmt(x) != fmt(e) for e in edges):
            return fmt(x)
        return beside(x, edges, 2) if v.unit == "ratio" else signed(beside(x, edges, 1, 100))
    return {v.key: fmt(v.estimate), f"{v.key}-lo": end(v.lo), f"{v.key}-hi": end(v.hi), f"{v.key}-word": verdict_word(v),
            f"{v.key}-kind": KIND_PHRASES[v.kind],
            f"{v.key}-spread": flag(fmt(v.lo) != fmt(v.hi))}  # 0: the seeds' differences were all equal (no width)


class KeyClash(RecordError):
    """Two writers set the same macro key, or a study wrote outside its own prefix (a one-line message)."""


def gather(writers: list[tuple[str, dict[str, str]]], prefix: str | None = None) -> dict[str, str]:
    """The macros of several writers as one dict; a key written twice, or outside `prefix/`, stops the analysis with a
    one-line KeyClash naming the writers."""
    out, by = {}, {}
    for writer, values in writers:
        for key, value in values.items():
            if prefix and not key.startswith(f"{prefix}/"):
                raise KeyClash(f"macro key {key!r} written by {writer} lies outside its study's prefix {prefix}/")
            if key in out:
                raise KeyClash(f"macro key {key!r} written twice: by {by[key]} and by {writer}")
            out[key], by[key] = value, writer
    return out


def analyse_study(study: Study, run: Run, out_dir) -> Path:
    """One study's figures/, tables/, macros.tex and verdicts.json in out_dir; KeyClash where a key is written twice
    or outside the study's prefix."""
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    for figure in study.figures:
        figure.draw(run, out / "figures" / f"{figure.name}.pdf")
    for table in study.tables:
        write_text(out / "tables" / f"{table.name}.tex", table.render(run))
    verdicts = study.verdicts(run)
    writers = [(f"{study.name}.ran", {f"{study.name}/ran": "1" if study.ran(run) else "0"}),
               (f"{study.name}.values", study.values(run))]
    writers += [(f"{study.name}.verdicts ({v.subject} against {v.reference})", verdict_values(v)) for v in verdicts]
    write_macros(gather(writers, study.name), out / "macros.tex")
    write_text(out / "verdicts.json", json.dumps([v.to_dict() for v in verdicts], indent=1))
    return out


def analyse(records_dirs, out_dir, command: str | None = None, reference_root=REFERENCE, studies=None,
            projection: dict | None = None, margins: Margins = MARGINS) -> Path:
    """Everything at once (the command line's `analyse --records`): tidy tables, then every study (or `studies`)."""
    from convbench.analysis.registry import STUDIES

    out = write_tidy(records_dirs, out_dir)
    run = read_run(out, command, reference_root, projection, margins)
    for name in studies or STUDIES:
        analyse_study(STUDIES[name], run, out / name)
    return out
