"""What a study declares: its figures, tables, values and verdicts, each a function of the run's tidy table.

A study package (kernel, learned, ...) has one shape: its __init__.py holds only STUDY = Study(...), assembled from
the package's modules: figures.py (the figures), tables.py (the tables), values.py (values, verdicts, ran), data.py
where several of those read the same frames derived from the tidy table, rows.py where the study adds rows or columns
of its own to the tidy table (Study.rows, Study.columns). The registry lists the studies. The Snakemake rules, the
report's captions and the tests read figures and tables from there, nowhere else.

One caching policy: every function computes from the Run it is given. What a study derives once and reads in several
of its figures, tables and values, it keeps with that Run (Run.cached), never in a module-level cache (records read
from committed files are cached by their paths and times: reference/runs.py).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from convbench.analysis.stats import MARGINS, Margins, Verdict


@dataclass(frozen=True)
class Run:
    """What every study is drawn from: the published tidy table and the two tables beside it."""
    tidy: pd.DataFrame  # one row per cell x metric x phase (tidy.tidy)
    samples: pd.DataFrame  # every raw timing sample (tidy.samples)
    environment: pd.DataFrame  # versions, threads and flags per record (tidy.environment)
    command: str | None = None  # how the run was started, quoted in the paper
    reference: Path | None = None  # committed reference runs on GPUs: results/reference
    projection: dict | None = None  # the config's projection section (links, GPU, device counts); None: not asked
    margins: Margins = MARGINS  # the config's practical margins, which every verdict is decided against
    memo: dict = field(default_factory=dict, init=False, compare=False, repr=False)  # Run.cached (a replaced Run
    # starts empty)

    def cached(self, key: str, compute: Callable[[], Any]) -> Any:
        """compute(), once per run and key (say 'learned/frames'): what a study derives from this run and reads in
        several of its figures, tables and values."""
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]

    def study(self, name: str) -> pd.DataFrame:
        return self.tidy[self.tidy["study"] == name] if len(self.tidy) else self.tidy


@dataclass(frozen=True)
class Figure:
    name: str  # figures/<name>.pdf
    draw: Callable[[Run, Path], Path]
    title: str  # a line naming it in Snakemake's report; its caption is the paper's (paper/sections/<study>.tex)


@dataclass(frozen=True)
class Table:
    name: str  # tables/<name>.tex
    render: Callable[[Run], str]


def _nothing(run: Run) -> dict:
    return {}


def _no_verdicts(run: Run) -> list:
    return []


def _no_columns(record) -> dict:
    return {}


def _no_rows(record) -> list:
    return []


@dataclass(frozen=True)
class Study:
    name: str
    title: str  # the report's category
    figures: tuple[Figure, ...] = ()
    tables: tuple[Table, ...] = ()
    values: Callable[[Run], dict[str, str]] = _nothing  # numbers and short phrases, keys '<name>/...'
    verdicts: Callable[[Run], list[Verdict]] = _no_verdicts  # comparisons, written as <key>, -lo, -hi, -word
    ran: Callable[[Run], bool] = field(default=lambda run: True)  # the flag <name>/ran that the paper tests
    # what only this study's cells have, added to the tidy table as it is built (tidy.tidy): columns per record
    # (records.Record -> {column: value}) and rows per record (-> measurement rows, tidy.COLUMNS); {} and [] for
    # records not its own
    columns: Callable[..., dict] = _no_columns
    rows: Callable[..., list] = _no_rows
