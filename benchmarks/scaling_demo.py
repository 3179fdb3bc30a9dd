"""Data vs tensor parallel on this machine, by hand (not a test): one torchrun job per device count.

    python benchmarks/scaling_demo.py [--devices 1 2 4] [--tensorflow] [--repeats 10] [--out results/scaling_demo]

For k3 and k5 of config/config.yaml (batch 64, 16 x 16 x 3 synthetic images), data and tensor parallel,
strong and weak scaling, and a straggler of 0 and 20 ms (strong scaling only), runs
convbench.parallel.worker under torchrun with gloo, then prints per cell: medians of the step and its
phases, the communication replayed alone, the no-communication baseline, efficiency (baseline / step),
speed-up over one device, and the bytes of one step counted against the closed-form model, with the
host's loopback counter (all ranks' bytes on the wire) against the ring model. With --tensorflow it also
runs convbench.parallel.tf_worker (MirroredStrategy over logical CPU devices; DTensor tensor parallel fails
and says why). On a machine with fewer cores than processes, the larger jobs are oversubscribed: their
times say what oversubscription costs, not what more devices would give.
"""
import argparse
import json
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from convbench.parallel.cells import scaling_cell
from convbench.spec import ArchSpec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cells_for(framework: str, devices: int, archs: list[ArchSpec], threads: int, repeats: int) -> list:
    cells = []
    for arch in archs:
        for parallelism in ("data", "tensor"):
            for scaling, lag in (("strong", 0), ("weak", 0), ("strong", 20)):
                if devices == 1 and scaling == "weak":
                    continue  # the same as strong on one device
                cells.append(scaling_cell(arch, framework, devices, parallelism, batch_size=64, image_size=16,
                                          threads=threads, scaling=scaling, straggler_ms=lag, warmup=3,
                                          min_repeats=repeats, max_repeats=repeats, max_seconds=5.0))
    return cells


def run(command: list[str], log: Path) -> None:
    print("$", " ".join(command[:8]), "...", flush=True)
    with open(log, "w") as f:
        done = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, timeout=1800)
    if done.returncode:
        print(f"  exit {done.returncode}; see {log}", flush=True)


def ms(summary) -> str:
    return f"{summary['median'] * 1e3:7.1f}" if summary else "      -"


def table(records: list[dict]) -> None:
    one = {(r["cell"]["framework"], r["cell"]["arch"]["name"], r["cell"]["parallelism"]): r["timings"]["step"]["median"]
           for r in records if r["status"] == "ok" and r["cell"]["devices"] == 1
           and not r["cell"]["settings"]["straggler_ms"]}
    head = (f"{'framework':10} {'arch':4} {'par':6} {'scaling':7} {'lag':>3} {'t':>2} {'B':>4} | {'step':>7} "
            f"{'fwd':>7} {'bwd':>7} {'opt':>7} {'comm':>7} {'base':>7} {'eff':>5} {'speedup':>7} | "
            f"{'payload':>9} {'model':>9} {'lo/step':>9} {'lo model':>9}")
    print(head + "\n" + "-" * len(head))
    for r in records:
        c = r["cell"]
        name = (f"{c['framework']:10} {c['arch']['name']:4} {c['parallelism']:6} {c['settings']['scaling']:7} "
                f"{c['settings']['straggler_ms']:3.0f} {c['devices']:2d} {r['counts'].get('global_batch', 0):4d}")
        if r["status"] != "ok":
            print(f"{name} | failed: {r['error'].strip().splitlines()[-1][:110]}")
            continue
        t, comm = r["timings"], r["communication"]
        phases = t["phases"]
        base = one.get((c["framework"], c["arch"]["name"], c["parallelism"]))
        # strong: the same work in less time; weak: t times the work, so throughput against one device
        work = 1 if c["settings"]["scaling"] == "strong" else c["devices"]
        speedup = f"{work * base / t['step']['median']:7.2f}" if base else "      -"
        lo, lo_model = comm.get("loopback_bytes_per_step"), comm.get("loopback_model_bytes_per_step")
        print(f"{name} | {ms(t['step'])} {ms(phases['forward'])} {ms(phases['backward'])} {ms(phases['optimizer'])} "
              f"{ms(t['communication'])} {ms(t['baseline']['step'])} {t['efficiency']:5.2f} {speedup} | "
              f"{comm['measured']['payload_bytes']:9d} {comm['model']['payload_bytes']:9d} "
              f"{lo if lo is not None else float('nan'):9.0f} {lo_model if lo_model is not None else float('nan'):9.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--archs", nargs="+", default=["k3", "k5"])
    parser.add_argument("--threads", type=int, default=2, help="the job's total; each process gets threads // t")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--tensorflow", action="store_true", help="also MirroredStrategy (and the DTensor attempt)")
    parser.add_argument("--out", type=Path, default=Path("results/scaling_demo"))
    args = parser.parse_args()
    config = yaml.safe_load(Path("config/config.yaml").read_text())
    speed = config["speed"]
    archs = [ArchSpec.from_dict(a, config["architectures"][a], speed["in_channels"], speed["num_classes"])
             for a in args.archs]
    args.out.mkdir(parents=True, exist_ok=True)
    wanted = []
    for devices in args.devices:
        cells = cells_for("torch", devices, archs, args.threads, args.repeats)
        (args.out / f"torch{devices}.json").write_text(json.dumps([c.to_dict() for c in cells]))
        run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(devices), "--master-port",
             str(free_port()), "-m", "convbench.parallel.worker", "--cells-json", str(args.out / f"torch{devices}.json"),
             "--out", str(args.out / "records")], args.out / f"torch{devices}.log")
        wanted += cells
    if args.tensorflow:
        cells = [c for devices in args.devices for c in cells_for("tensorflow", devices, archs, args.threads,
                                                                   args.repeats)]
        (args.out / "tensorflow.json").write_text(json.dumps([c.to_dict() for c in cells]))
        run([sys.executable, "-m", "convbench.parallel.tf_worker", "--cells-json", str(args.out / "tensorflow.json"),
             "--out", str(args.out / "records")], args.out / "tensorflow.log")
        wanted += cells
    records = []
    for cell in wanted:
        path = args.out / "records" / f"{cell.id}.json"
        if path.exists():
            records.append(json.loads(path.read_text()))
        else:
            print(f"no record for {cell.id}")
    table(records)


if __name__ == "__main__":
    main()
