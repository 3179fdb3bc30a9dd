"""Do two versions of the analysis publish the same numbers from the same records?

    python scripts/same_numbers.py --records results/default/records --before 54f6005 [--after HEAD]
        [--renamed kernel/repeat/=overview/repeat/ ...]

Runs the analysis of each git revision (checked out into a temporary worktree, imported from there) on the same
records, then compares (1) tidy.csv: every row and column of the older table must be in the newer one unchanged
(the newer may add columns, and rows of metrics the older did not have); (2) every macro whose value is a plain
number ("1.23", "$-$0.4", "57") must have the same key and value in both. Prints what differs; exit 1 if anything
does. --after defaults to the working tree; --renamed OLD=NEW compares a key that begins with OLD before under
the key that begins with NEW after (a value moved to another study keeps its number).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

NUMBER = re.compile(r"^(\$-\$|-)?\d+(\.\d+)?$")
ROOT = Path(__file__).resolve().parents[1]


def analyse(revision: str | None, records: Path, out: Path) -> dict[str, str]:
    """Run one revision's `convbench analyse` on records into out; its macros, gathered from every file."""
    src = ROOT / "src"
    if revision:
        tree = out.parent / f"tree-{out.name}"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), revision], check=True,
                       capture_output=True)
        src = tree / "src"
    env = {**os.environ, "PYTHONPATH": str(src), "MPLBACKEND": "Agg"}
    subprocess.run([sys.executable, "-m", "convbench", "analyse", "--records", str(records), "--out", str(out)],
                   check=True, env=env, cwd=src.parent)
    if revision:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True)
    values = {}
    for path in sorted(out.rglob("macros.tex")):
        for line in path.read_text().splitlines():
            if line.startswith("\\cbset{"):
                key, _, value = line[len("\\cbset{"):].partition("}{")
                values[key] = value[:-1]
    return values


def tidy_problems(before: pd.DataFrame, after: pd.DataFrame) -> list[str]:
    missing = [c for c in before.columns if c not in after.columns]
    if missing:
        return [f"tidy.csv: columns {missing} are gone"]
    after = after[after["metric"].isin(before["metric"].dropna()) | after["metric"].isna()]
    if "epoch" in after and "epoch" not in before:  # rows per epoch or per block were new kinds of rows
        after = after[after["epoch"].isna() & after["block"].isna()]
    after = after[before.columns].reset_index(drop=True)
    if len(after) != len(before):
        return [f"tidy.csv: {len(before)} rows before, {len(after)} of those kinds after"]
    diff = ~((before == after) | (before.isna() & after.isna()))
    return [f"tidy.csv row {i} ({before.loc[i, 'cell_id']}, {before.loc[i, 'metric']}): column {c} "
            f"{before.loc[i, c]!r} -> {after.loc[i, c]!r}" for i, c in zip(*diff.to_numpy().nonzero())
            for c in [before.columns[c]]][:50]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", required=True, type=Path)
    parser.add_argument("--before", required=True, help="git revision of the older analysis")
    parser.add_argument("--after", help="git revision of the newer analysis (default: the working tree)")
    parser.add_argument("--renamed", action="append", default=[], metavar="OLD=NEW",
                        help="a key prefix renamed between the two (repeatable)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = analyse(args.before, args.records.resolve(), Path(tmp) / "before")
        new = analyse(args.after, args.records.resolve(), Path(tmp) / "after")
        problems = tidy_problems(pd.read_csv(Path(tmp) / "before/tidy.csv"), pd.read_csv(Path(tmp) / "after/tidy.csv"))
    renames = [r.split("=", 1) for r in args.renamed]
    renamed = {next((new + k[len(old_):] for old_, new in renames if k.startswith(old_)), k): v for k, v in old.items()}
    numeric = {k: v for k, v in renamed.items() if NUMBER.match(v)}
    for key, value in sorted(numeric.items()):
        if key not in new:
            problems.append(f"macro {key}: {value} before, missing after")
        elif new[key] != value:
            problems.append(f"macro {key}: {value} before, {new[key]} after")
    print(f"tidy.csv and {len(numeric)} numeric macros compared ({len(old)} macros before, {len(new)} after)")
    print("\n".join(problems) if problems else "identical")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
