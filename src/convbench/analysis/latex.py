"""LaTeX out: booktabs tables, the macros file the text quotes, and the PDF build (latexmk; never forced).

The paper quotes every number as \\cb{key}: each study writes its keys as \\cbset{key}{value} lines into its own
macros.tex, and the build gathers them. A flag (a key whose value is 1) lets paper/sections/*.tex say whether a study
ran, through \\ifcb{key}{then}{else}.
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd

from convbench.analysis.formatting import escape, tt, words
from convbench.files import replacing, write_text


def blank_repeats(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Show a leading column's value only where it (or a column before it) changes, as grouped tables do."""
    changed = {c: (df[columns[: i + 1]] != df[columns[: i + 1]].shift()).any(axis=1) for i, c in enumerate(columns)}
    return df.assign(**{c: df[c].where(changed[c], "") for c in columns})


def header(columns: pd.Index) -> list[str]:
    """One header row, or two for a two-level column index (top level spanned and underlined)."""
    if not isinstance(columns, pd.MultiIndex):
        return [" & ".join(escape(c) for c in columns) + r" \\"]
    top, rules, start = [], [], 1
    for name, group in itertools.groupby(columns.get_level_values(0)):
        n = len(list(group))
        top += [rf"\multicolumn{{{n}}}{{c}}{{{escape(name)}}}"] if name else [""] * n  # one cell per unnamed column
        if name:
            rules.append(rf"\cmidrule(lr){{{start}-{start + n - 1}}}")
        start += n
    return [" & ".join(top) + r" \\", "".join(rules), " & ".join(escape(c) for c in columns.get_level_values(1)) + r" \\"]


def booktabs(df: pd.DataFrame, caption: str, label: str, align: str | None = None, raw: tuple[str, ...] = (),
             size: str = r"\small", groups: pd.Series | None = None, note: str | None = None,
             colsep: str = "4pt") -> str:
    """A table float; cells are escaped except in the columns named in raw (already LaTeX).

    groups: one name per row, shown as a heading row wherever it changes (e.g. the study).
    note: LaTeX set under the table, e.g. what a dagger means.
    """
    group = groups is not None
    groups = groups if group else [None] * len(df)
    align = align or "l" * len(df.columns)
    body, previous = [], None
    for (_, row), name in zip(df.iterrows(), groups):
        if group and name != previous:
            body += ([r"\midrule"] if previous is not None else []) + [
                rf"\multicolumn{{{len(df.columns)}}}{{@{{}}l}}{{\textit{{{escape(name)}}}}} \\"]
            previous = name
        body.append(" & ".join(str(v) if c in raw else escape(v) for c, v in row.items()) + r" \\")
    return "\n".join([r"\begin{table}[htbp]", r"\centering", size, rf"\setlength{{\tabcolsep}}{{{colsep}}}",
                      rf"\caption{{{caption}}}", rf"\label{{{label}}}",
                      rf"\begin{{tabular}}{{{align}}}", r"\toprule", *header(df.columns), r"\midrule", *body,
                      r"\bottomrule", r"\end{tabular}", *([rf"\par\smallskip{{\footnotesize {note}}}"] if note else []),
                      r"\end{table}", ""])


def ragged(fraction: float) -> str:
    """A ragged-right paragraph column of a fraction of the line width (needs the array package)."""
    return rf">{{\raggedright\arraybackslash}}p{{{fraction:.2f}\linewidth}}"


def placeholder(caption: str, label: str, text: str) -> str:
    return "\n".join([r"\begin{table}[htbp]", r"\centering", rf"\caption{{{caption}}}", rf"\label{{{label}}}",
                      rf"\emph{{{escape(text)}}}", r"\end{table}", ""])


DAGGER = r"$^\dagger$"


def noisy_note(df: pd.DataFrame, iqr_shown: bool = True) -> str | None:
    """What the dagger means, with the threshold the protocol recorded; None when no shown cell is noisy.
    iqr_shown: whether the table shows an IQR (then it says which)."""
    if not df["noisy"].fillna(False).any():
        return None
    limits = words(f"{x:g}" for x in sorted(df.loc[df["noisy"].fillna(False), "max_iqr_ratio"].dropna().unique()))
    limit = f"{limits} of the median (the protocol's {tt('max_iqr_ratio')})" if limits else "the protocol's threshold"
    return (rf"{DAGGER}\,Noisy: in at least one of the cell's timing loops (a seed or a launch) the interquartile "
            rf"range of the repeats exceeded {limit} after its retries"
            + ("; the IQR shown is the median over them." if iqr_shown else "."))


def flagged(text: str, noisy) -> str:
    return text + DAGGER if pd.notna(noisy) and noisy else text


class LatexError(RuntimeError):
    """The LaTeX build failed; the message ends with the tail of its log."""


def write_macros(values: dict[str, str], path) -> Path:
    """One \\cbset line per key; a value with a bare % (a TeX comment: it swallowed the rest of macros.tex and the
    build stopped with a runaway argument) is refused, naming its key."""
    for key, value in values.items():
        if re.search(r"(?<!\\)%", str(value)):
            raise LatexError(f"macro {key!r}: a bare % in {value!r} (write \\%)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["% Generated by convbench.analysis from the run's result records. Do not edit."]
    lines += [rf"\cbset{{{key}}}{{{value}}}" for key, value in sorted(values.items())]
    write_text(path, "\n".join(lines) + "\n")
    return path


def read_macros(path) -> dict[str, str]:
    """The values of a macros.tex that write_macros wrote (one key per line)."""
    values = {}
    for line in Path(path).read_text().splitlines():
        if line.startswith("\\cbset{"):
            key, _, value = line[len("\\cbset{"):].partition("}{")
            values[key] = value[:-1]
    return values


def build_pdf(generated_dir, pdf_path, paper_dir="paper", timeout: float = 300) -> Path:
    """latexmk main.tex from paper_dir; TeX finds figures/ and tables/ in every study's folder of generated_dir and
    reads the macros of all of them, gathered into one macros.tex in the build folder beside pdf_path."""
    paper, generated, pdf = Path(paper_dir).resolve(), Path(generated_dir).resolve(), Path(pdf_path).resolve()
    build = pdf.parent / "latex"
    build.mkdir(parents=True, exist_ok=True)
    studies = sorted(p.parent for p in generated.glob("*/macros.tex"))
    if not studies:
        raise LatexError(f"{generated}: no study's macros.tex; run the analysis first")
    write_text(build / "macros.tex", "".join(p.joinpath("macros.tex").read_text() for p in studies))
    # the trailing separator keeps TeX's own paths
    search = os.pathsep.join(map(str, [paper, build, *studies, generated])) + os.pathsep
    env = {**os.environ, "TEXINPUTS": search, "BIBINPUTS": search}
    # -g: build even where latexmk thinks the PDF is current; the same build dir may have seen other generated files.
    command = ["latexmk", "-pdf", "-g", "-halt-on-error", "-interaction=nonstopmode", "-file-line-error",
               f"-outdir={build}", "main.tex"]
    try:
        result = subprocess.run(command, cwd=paper, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise LatexError(f"latexmk timed out after {timeout} s in {build}") from e
    log = build / "main.log"
    if result.returncode != 0 or not (build / "main.pdf").exists():
        text = log.read_text(errors="replace") if log.exists() else result.stdout + result.stderr
        tail = "\n".join(text.splitlines()[-40:])
        raise LatexError(f"latexmk failed (exit {result.returncode}); see {log}. Log tail:\n{tail}")
    with replacing(pdf) as tmp:
        shutil.copyfile(build / "main.pdf", tmp)
    return pdf
