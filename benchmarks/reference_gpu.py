"""A reference run on one GPU: the speed and layer cells of config/paper-gpu.yaml, records committed.

    python benchmarks/reference_gpu.py [--config config/paper-gpu.yaml] [--frameworks torch] [--dry-run]

Writes results/reference/<gpu-name>/records/<task>/<framework>/<cell>.json (with the environment:
GPU model, driver, CUDA, cuDNN, flags), one process per framework, in about eight minutes on a
current GPU. Frameworks that are not installed are skipped and said so. The paper renders a
"reference GPU" section from these records when they are committed.
"""
import argparse
import importlib.util
import re
import subprocess
import sys
import time
from pathlib import Path

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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/paper-gpu.yaml")
    parser.add_argument("--frameworks", nargs="+", default=list(MODULES))
    parser.add_argument("--dry-run", action="store_true", help="list the cells, run nothing")
    args = parser.parse_args()

    _, cells = config.load(args.config)
    cells = [c for c in cells if c.task in ("speed", "layers") and c.framework in args.frameworks]
    for framework in args.frameworks:
        if importlib.util.find_spec(MODULES[framework]) is None:
            print(f"{framework} is not installed here: its cells are skipped")
            cells = [c for c in cells if c.framework != framework]
    if args.dry_run:
        for group, members in groups(cells).items():
            print(f"{group}: {len(members)} cells")
        return
    out = Path("results/reference") / gpu_name() / "records"
    for group, members in groups(cells).items():
        t0 = time.perf_counter()
        # one process per group, as in the pipeline: one framework import, nothing else on the GPU
        subprocess.run([sys.executable, "-m", "convbench", "run", "--config", args.config, "--group", group,
                        "--out", str(out / group)], check=True)
        print(f"{group}: {len(members)} cells in {time.perf_counter() - t0:.0f} s -> {out / group}")


if __name__ == "__main__":
    main()
