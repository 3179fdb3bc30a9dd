"""Does the learned kernel size find the planted scale? The config's tracking study, at chosen scales and seeds.

    python benchmarks/learned_demo.py [--config config/config.yaml] [--scales 7 11 15] [--seeds 0 1]
                                      [--radius-penalty 0.5] [--radius-lr 0.05] [--framework torch]

Runs the study's train cells in this process (convbench.run.run_cells: the two phases of convbench.learned) and
prints, per cell, the epoch the radii started to learn, the radius of each block per epoch, and the shrunk network's
field against the smallest field that covers the scale (convbench.spec.covering_field). For trying settings on a few
seeds before a run; the paper's numbers come from the pipeline.
"""
import argparse
import tempfile
from pathlib import Path

from convbench import config
from convbench.run import run_cells
from convbench.spec import ArchSpec, covering_field, field


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--scales", type=int, nargs="+")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--radius-penalty", type=float, help="in place of the architecture's")
    parser.add_argument("--radius-lr", type=float, help="in place of the study's train.learned_lr.log_radius")
    parser.add_argument("--framework", default="torch", choices=["torch", "tensorflow"])
    args = parser.parse_args()

    conf = config.read(args.config)
    study = dict(conf["studies"]["tracking"])
    train = dict(study.get("train", {}))
    if args.scales:
        study["scales"] = args.scales
    if args.seeds:
        train |= {"seeds": args.seeds, "repeats": len(args.seeds)}
    if args.radius_lr:
        train["learned_lr"] = {**train.get("learned_lr", {}), "log_radius": args.radius_lr}
    conf |= {"frameworks": [args.framework], "studies": {"tracking": {**study, "train": train}}}
    if args.radius_penalty is not None:
        [name] = study["architectures"]
        arch = conf["architectures"][name]
        conf["architectures"] = {name: {**arch, "blocks": [{**b, "radius_penalty": args.radius_penalty}
                                                           for b in arch["blocks"]]}}
    cells = config.check(conf)
    with tempfile.TemporaryDirectory() as out:
        for cell in cells:
            [record] = run_cells([cell], Path(out), log=lambda _: None)
            if record["status"] != "ok":
                print(f"{cell.id}: {record['error'].splitlines()[-1]}")
                continue
            training, result = record["training"], record["learned"]
            scale = cell.settings["data"]["scale"]
            shrunk = ArchSpec.from_dict("shrunk", result["shrunk_arch"], cell.arch.in_channels, cell.arch.num_classes)
            print(f"\n{cell.id}: scale {scale}, learning from epoch {training['learning_started_epoch']}")
            for e in training["epochs"]:
                radii = " ".join(f"{v:5.2f}" for k, v in e["learned"].items() if k.endswith(".radius"))
                print(f"  epoch {e['epoch']:3d}  train acc {e['train_accuracy']:.3f}  radii {radii}")
            largest = field(cell.arch)
            print(f"  kept kernels {[k['kernel'] for k in result['kept']]}: field {field(shrunk)} (covering "
                  f"{covering_field(cell.arch, scale)}, largest {largest}), shrunk test accuracy "
                  f"{result['test_accuracy']:.3f}, {training['stopped_epoch']} epochs")


if __name__ == "__main__":
    main()
