import json
import os
import sys
from pathlib import Path

from convbench.cells import groups

# Jobs call `python`: let that be the interpreter running Snakemake (say .venv's, even when not
# activated). A conda env that --sdm conda activates for a job still comes first on its PATH.
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])

# "task/framework" (and "scaling/<framework><devices>") -> cells: one job per group, whose
# process (or processes, one per device) imports its framework once for all its cells.
GROUPS = groups(CELLS)


wildcard_constraints:
    run=r"[A-Za-z0-9._-]+",
    framework="torch|tensorflow",
    task="speed|layers",
    devices=r"\d+",


# How to reproduce this run, quoted in the paper: the config files that made it, not volatile flags.
_extra_configs = [str(f) for f in workflow.configfiles if Path(f) != Path("config/config.yaml")]
REPRODUCE = " ".join(["snakemake --cores all", *(f"--configfile {f}" for f in _extra_configs)])


def cells_json(group):
    return json.dumps([cell.to_dict() for cell in GROUPS.get(group, [])])


def record_dirs(wildcards):
    return [f"results/{wildcards.run}/records/{group}" for group in GROUPS]


# Cluster resources of a group (task/framework, scaling/<framework><devices>), which is one Slurm job.
# A multi-device cell's job holds all its devices, and `threads` cores for each device's process; its
# launcher (torchrun, or TensorFlow's worker) runs inside the job.
def gpus(group):
    return max((cell.devices for cell in GROUPS.get(group, []) if cell.device == "cuda"), default=0)


def cpus(group):
    return max((cell.threads * cell.devices for cell in GROUPS.get(group, [])), default=1)


# `snakemake --report`: a category per study (the records of its cells, with a label column per cell
# parameter, and the figures about it alone); what spans studies goes under "All studies".
ALL_STUDIES = "All studies"
FIGURE_STUDY = {"backward_vs_receptive_field": "kernel", "engine_phases": "engines", "layers": "layers",
                "activation_accuracy": "activation", "activation_gap": "activation", "activation_time": "activation",
                "learned_pareto": "learned", "learned_radius": "learned", "learned_maps": "learned",
                "scaling_speedup": "scaling", "scaling_phases": "scaling", "scaling_bytes": "scaling"}


def generated_category(wildcards):
    return FIGURE_STUDY.get(wildcards.get("figure"), ALL_STUDIES)


def generated_subcategory(wildcards):
    return "Figures" if wildcards.get("figure") else "Tables"


def generated_labels(wildcards):
    return {"figure": wildcards.figure} if wildcards.get("figure") else {"table": wildcards.table}


def _record(wildcards, output):
    return json.loads((Path(output[0]) / f"{wildcards.cell}.json").read_text())


def record_category(wildcards, output):
    return _record(wildcards, output)["cell"]["study"]


def record_labels(wildcards, output):
    record = _record(wildcards, output)
    cell = record["cell"]
    return {
        "architecture": cell["arch"]["name"],
        "framework": cell["framework"],
        "engine": cell["engine"],
        "devices": f"{cell['devices']} {cell['device']}, {cell['parallelism']}",
        "batch": cell["batch_size"],
        "seed": cell["seed"],
        "status": record["status"],
    }
