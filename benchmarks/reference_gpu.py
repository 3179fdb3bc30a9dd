"""A reference run on one GPU: the speed and layer cells of config/paper-gpu.yaml, records committed.

    python benchmarks/reference_gpu.py [--config config/paper-gpu.yaml] [--frameworks torch] [--studies kernel ...]
                                       [--set speed.launches=3 cuda.tf32=true ...] [--replace] [--dry-run]

Writes results/reference/<gpu-name>[-tf32]/records/<task>/<framework>/<cell>.json (with the environment: GPU
model, driver, CUDA, cuDNN, flags) and, beside them, config.yaml: the config these cells came from, after --set.
One task at a time, as the pipeline's measuring job runs it: speed.launches processes per framework, the frameworks'
launches taking turns, nothing else on the GPU.
Frameworks that are not installed are skipped and said so. The paper renders a "reference GPU" section from the
records once they are committed. --set KEY=VALUE changes one setting (a dotted path, a YAML value) to fit a
run into a shorter lease, e.g. fewer launches or only some engines of a study; the written config says which.
"""
import argparse
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from convbench import config
from convbench.cells import groups

MODULES = {"torch": "torch", "tensorflow": "tensorflow"}


def gpu_name() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True)
    except FileNotFoundError:
        out = None
    if out is None or out.returncode != 0 or not out.stdout.strip():
        raise SystemExit("no NVIDIA GPU found (nvidia-smi): run this on the GPU machine")
    return re.sub(r"[^a-z0-9]+", "-", out.stdout.splitlines()[0].lower()).strip("-")


def apply(settings: dict, assignment: str) -> None:
    """KEY=VALUE, KEY a dotted path into the config (studies.size.engines.torch), VALUE read as YAML ([eager], 3)."""
    key, sep, value = assignment.partition("=")
    if not sep or not key:
        raise config.ConfigError(f"--set {assignment}: expected KEY=VALUE, e.g. speed.launches=3")
    *parents, last = key.split(".")
    node = settings
    for part in parents:
        if not isinstance(node.get(part), dict):
            raise config.ConfigError(f"--set {assignment}: {key}: the config has no section {part!r} there")
        node = node[part]
    node[last] = yaml.safe_load(value)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/paper-gpu.yaml")
    parser.add_argument("--frameworks", nargs="+", default=list(MODULES))
    parser.add_argument("--studies", nargs="+", help="only these studies' speed and layer cells (default: all)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="change a setting of the config")
    parser.add_argument("--replace", action="store_true", help="remove the GPU's earlier records first")
    parser.add_argument("--dry-run", action="store_true", help="list the cells, run nothing")
    args = parser.parse_args()

    with config.one_line_errors():
        settings = config.read(args.config)
        for assignment in args.set:
            apply(settings, assignment)
        if args.studies:
            unknown = sorted(set(args.studies) - set(settings["studies"]))
            if unknown:
                raise config.ConfigError(f"--studies: {args.config} has no study {', '.join(unknown)}")
            settings["studies"] = {name: settings["studies"][name] for name in args.studies}
        cells = config.check(settings, f"{args.config} with --set {' '.join(args.set)}" if args.set else args.config)
    cells = [c for c in cells if c.task in ("speed", "layers") and c.framework in args.frameworks]
    for framework in args.frameworks:
        if importlib.util.find_spec(MODULES[framework]) is None:
            print(f"{framework} is not installed here: its cells are skipped")
            cells = [c for c in cells if c.framework != framework]
    if args.dry_run:
        for group, members in groups(cells).items():
            print(f"{group}: {len(members)} cells, {int(members[0].settings.get('launches', 1))} launches")
        return
    root = Path("results/reference") / (gpu_name() + ("-tf32" if settings.get("cuda", {}).get("tf32") else ""))
    if args.replace:  # else a cell of the same parameters is not measured again (convbench run resumes)
        shutil.rmtree(root / "records", ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    written = root / "config.yaml"
    written.write_text(f"# {args.config} with --set {' '.join(args.set) or '(nothing)'}"
                       f"{' and only the studies ' + ' '.join(args.studies) if args.studies else ''}\n"
                       + yaml.safe_dump(settings, sort_keys=False))
    for task in dict.fromkeys(c.task for c in cells):
        members = [c for c in cells if c.task == task]
        t0 = time.perf_counter()
        # as the pipeline's measuring job: a process per framework and launch, the frameworks' launches taking turns
        subprocess.run([sys.executable, "-m", "convbench", "run", "--cells-json", json.dumps([c.to_dict() for c in members]),
                        "--under", str(root / "records" / task)], check=True)
        print(f"{task}: {len(members)} cells in {time.perf_counter() - t0:.0f} s -> {root / 'records' / task}",
              flush=True)


if __name__ == "__main__":
    main()
