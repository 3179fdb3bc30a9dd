"""Result records -> tidy table -> figures, tables, macros -> the paper PDF. Imports neither torch nor tensorflow."""
from __future__ import annotations

from pathlib import Path

from convbench.analysis import (activation, claim, engines, figures, layers, learned, macros, reference, scaling,
                                tables, tidy)
from convbench.analysis.latex import LatexError, build_pdf

__all__ = ["analyse", "build_pdf", "LatexError", "activation", "claim", "engines", "figures", "layers", "macros",
           "learned", "reference", "scaling", "tables", "tidy"]


# Every figure a run writes, by name (analysis/figures.py's, and those of the studies that draw their own).
FIGURES = (*figures.FIGURES, *learned.FIGURES, *scaling.FIGURES)


def analyse(records_dir, out_dir, command: str | None = None, reference_root="results/reference") -> Path:
    """Write tidy.csv, samples.csv, environment.csv, figures/*.pdf, tables/*.tex and macros.tex into out_dir.

    command: how the run was started, quoted in the paper; defaults to a 'command' the records' environment holds.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = tidy.load_records(records_dir)
    df, env, samples = tidy.tidy(records), tidy.environment(records), tidy.samples(records)
    df.to_csv(out / "tidy.csv", index=False)
    samples.to_csv(out / "samples.csv", index=False)
    env.to_csv(out / "environment.csv", index=False)
    figures.all_figures(df, out / "figures")
    studies = {"claim": claim.claim_table(df, samples), "layers": layers.layers_table(df),
               "fairness": engines.fairness_table(df, env), "activation_cost": activation.cost_table(df),
               "activation_accuracy": activation.accuracy_table(df)}
    tables.write_tables(df, env, out / "tables", studies)
    if command is None and "command" in env:
        command = "; ".join(sorted({str(c) for c in env["command"].dropna()})) or None
    values = macros.macros(df, env, command, samples)
    # the later studies read the records themselves and write their own figures and tables
    values.update(learned.analyse_learned(records, out))
    values.update(scaling.analyse_scaling(records, out))
    values.update(reference.analyse_reference(Path(reference_root), out))
    macros.write_macros(values, out / "macros.tex")
    return out
