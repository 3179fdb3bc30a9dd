"""Command line: list and run cells, analyse records, build the paper.

    python -m convbench cells --config config/config.yaml
    python -m convbench run --config config/config.yaml --cell kernel_k5_torch-eager_cpu1-none_b64_s0_speed
    python -m convbench tidy --records results/default/records --out results/default/generated
    python -m convbench analyse --out results/default/generated --study kernel
    python -m convbench analyse --records results/default/records --out results/default/generated   # all at once
    python -m convbench paper --generated results/default/generated --pdf results/default/paper.pdf
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from convbench import cells as cells_module
from convbench import config as config_module
from convbench.data import DataError
from convbench.files import OutputError
from convbench.spec import SpecError

USER_ERRORS = (config_module.ConfigError, SpecError, DataError, FileNotFoundError, OutputError)


def _is_user_error(error: Exception) -> bool:
    """Errors the user fixes, told in one line. The analysis's RecordError (an unreadable or invalid record)
    is known by its name: importing it here would load the analysis for every command, and tie this
    module to wherever the analysis keeps the class."""
    return isinstance(error, USER_ERRORS) or any(c.__name__ == "RecordError" for c in type(error).__mro__)


def _check_record_dirs(paths) -> None:
    """A mistyped --records path, or folders without a record: named in one line, before the analysis."""
    if not paths:
        return
    from convbench.analysis.records import record_paths  # the reader's own search: symbolic links followed

    for path in paths:
        if not Path(path).exists():
            raise FileNotFoundError(f"{path}: no such records directory")
    if not record_paths(paths):
        raise FileNotFoundError(f"{' '.join(paths)}: no records (*.json) in it")


def _select_cells(args) -> list[cells_module.Cell]:
    if args.cells_json:
        try:
            return cells_module.read_cells(args.cells_json)
        except (ValueError, TypeError, KeyError) as e:
            raise config_module.ConfigError(f"--cells-json: not a list of cells: {e}") from None
    _, cells = config_module.load(args.config)
    if args.cell:
        by_id = {c.id: c for c in cells}
        unknown = [i for i in args.cell if i not in by_id]
        if unknown:
            raise config_module.ConfigError(f"{args.config}: no cell named {', '.join(unknown)} (see `python -m convbench cells`)")
        cells = [by_id[i] for i in args.cell]
    if args.group:
        cells = [c for c in cells if c.group == args.group]
    return cells


def cmd_cells(args) -> None:
    _, cells = config_module.load(args.config)
    for group, members in cells_module.groups(cells).items():
        print(f"# {group}: {len(members)} cells")
        for cell in members:
            print(cell.id)


def cmd_run(args) -> None:
    from convbench.run import check_data, run_groups, staging

    cells = _select_cells(args)
    if not cells:
        raise SystemExit("no cells selected")
    # what would fail every cell alike is refused before the first one runs, here where they run
    config_module.check_hardware(cells, "--cells-json" if args.cells_json else args.config)
    check_data(cells)
    # a group holds one framework: one import for all its cells (one launch, for several devices). The groups run
    # together, so that their launches interleave (run_groups). --under DIR: a folder per group under DIR, named by
    # the group's last part (speed/torch -> DIR/torch), staged in DIR.partial/torch, outside what Snakemake empties.
    grouped = cells_module.groups(cells)
    for flag, folder in (("--out", args.out), ("--under", args.under)):
        if folder is not None and Path(folder).name in ("", ".", ".."):
            raise config_module.ConfigError(f"{flag} {folder}: name a folder of its own (its records are staged "
                                            f"beside it, in <name>.partial)")
    if args.under and len({g.split("/")[-1] for g in grouped}) < len(grouped):
        raise config_module.ConfigError(f"--under {args.under}: the cells' groups {', '.join(grouped)} share a name")

    def folders(group: str) -> tuple[Path, Path]:
        if args.under:
            name = group.split("/")[-1]
            return Path(args.under) / name, staging(Path(args.under)) / name
        out_dir = Path(args.out) if args.out else Path("results") / "cli" / "records" / group
        return out_dir, staging(out_dir)

    run_groups([(members, *folders(group)) for group, members in grouped.items()], overwrite_ok=args.overwrite_ok,
               launch=args.launch)
    if args.under:
        shutil.rmtree(staging(Path(args.under)), ignore_errors=True)  # its groups' stages are gone: nothing left
    for group in grouped:
        print(f"records in {folders(group)[0]}")


def cmd_tidy(args) -> None:
    from convbench.analysis import write_tidy

    write_tidy([Path(p) for p in args.records], Path(args.out))


def cmd_analyse(args) -> None:
    from convbench.analysis import analyse, analyse_study, read_run
    from convbench.analysis.registry import STUDIES
    from convbench.analysis.stats import Margins

    projection = config_module.projection_section(args.projection, args.config)
    margins = Margins.from_config(config_module.margins_section(args.margins, args.config))
    unknown = sorted(set(args.study or ()) - set(STUDIES))
    if unknown:
        raise config_module.ConfigError(f"--study: no study named {', '.join(unknown)} (one of {', '.join(STUDIES)})")
    if args.records:
        analyse([Path(p) for p in args.records], Path(args.out), args.command, Path(args.reference), args.study,
                projection, margins)
        return
    run = read_run(Path(args.out), args.command, Path(args.reference), projection, margins)
    for name in args.study or STUDIES:
        analyse_study(STUDIES[name], run, Path(args.out) / name)


def cmd_paper(args) -> None:
    from convbench.analysis import build_pdf

    build_pdf(Path(args.generated), Path(args.pdf), paper_dir=Path(args.paper_dir))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="convbench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("cells", help="list the cells a config asks for, by process group")
    p.add_argument("--config", default="config/config.yaml")
    p.set_defaults(func=cmd_cells)

    p = sub.add_parser("run", help="run cells in this process and write one record each")
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--cell", action="append", help="a cell id (repeatable); default: all cells of the config")
    p.add_argument("--group", help="only cells of this group, e.g. speed/torch")
    p.add_argument("--cells-json", help="a JSON file holding the cells (the Snakemake rules write one per job), "
                                        "or the JSON text itself")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out", help="directory for the records, of every group's cells "
                                     "(default results/cli/records/<group>)")
    where.add_argument("--under", help="a directory per group under this one, named by the group's last part "
                                       "(speed/torch -> UNDER/torch): a measuring job's output")
    p.add_argument("--overwrite-ok", action="store_true",
                   help="run cells that have an ok record too, and let a failed record replace an ok one")
    p.add_argument("--launch", type=int, help="this process is launch N of a timed group's (speed.launches): "
                   "run the cells here, once")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("tidy", help="records -> tidy.csv, samples.csv, environment.csv")
    p.add_argument("--records", nargs="+", required=True, help="record directories")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_tidy)

    p = sub.add_parser("analyse", help="tidy table -> each study's figures, tables and macros in <out>/<study>/")
    p.add_argument("--out", required=True, help="the generated folder that holds tidy.csv")
    p.add_argument("--records", nargs="+", help="record directories: write the tidy table from them first")
    p.add_argument("--study", action="append", help="only this study (repeatable); default: every study")
    p.add_argument("--command", help="the command that reproduces the run, quoted in the paper")
    p.add_argument("--reference", default="results/reference", help="committed reference runs on GPUs")
    p.add_argument("--projection", help="the config's projection section as JSON (the Snakemake rule passes it)")
    p.add_argument("--margins", help="the config's margins section as JSON (the Snakemake rule passes it)")
    p.add_argument("--config", help="or read the projection and margins sections from this config file")
    p.set_defaults(func=cmd_analyse)

    p = sub.add_parser("paper", help="build the PDF from paper/ and the generated files")
    p.add_argument("--generated", required=True)
    p.add_argument("--pdf", required=True)
    p.add_argument("--paper-dir", default="paper")
    p.set_defaults(func=cmd_paper)

    args = parser.parse_args(argv)
    try:
        _check_record_dirs(getattr(args, "records", None))
        args.func(args)
    except Exception as e:
        if not _is_user_error(e):
            raise
        print(f"convbench: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
