"""Result records -> tidy table -> figures, tables, macros -> the paper PDF. Imports neither torch nor tensorflow."""
from __future__ import annotations

from pathlib import Path

from convbench.analysis import figures, macros, tables, tidy
from convbench.analysis.latex import LatexError, build_pdf

__all__ = ["analyse", "build_pdf", "LatexError", "figures", "macros", "tables", "tidy"]


def analyse(records_dir, out_dir, command: str | None = None) -> Path:
    """Write tidy.csv, environment.csv, figures/*.pdf, tables/*.tex and macros.tex into out_dir.

    command: how the run was started, quoted in the paper; defaults to a 'command' the records' environment holds.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = tidy.load_records(records_dir)
    df, env = tidy.tidy(records), tidy.environment(records)
    df.to_csv(out / "tidy.csv", index=False)
    env.to_csv(out / "environment.csv", index=False)
    figures.all_figures(df, out / "figures")
    tables.write_tables(df, env, out / "tables")
    if command is None and "command" in env:
        command = "; ".join(sorted({str(c) for c in env["command"].dropna()})) or None
    macros.write_macros(macros.macros(df, env, command), out / "macros.tex")
    return out
