import json
import os
import sys
from pathlib import Path

from convbench.cells import groups

# Jobs call `python`: let that be the interpreter running Snakemake (say .venv's, even when not
# activated). A conda env that --sdm conda activates for a job still comes first on its PATH.
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])

GROUPS = groups(CELLS)  # "task/framework" -> cells; one process per group shares the framework import


wildcard_constraints:
    run=r"[A-Za-z0-9._-]+",
    framework="|".join(config["frameworks"]),
    task="speed|layers",


# How to reproduce this run, quoted in the paper: the config files that made it, not volatile flags.
_extra_configs = [str(f) for f in workflow.configfiles if Path(f) != Path("config/config.yaml")]
REPRODUCE = " ".join(["snakemake --cores all", *(f"--configfile {f}" for f in _extra_configs)])


def cells_json(task, framework):
    return json.dumps([cell.to_dict() for cell in GROUPS.get(f"{task}/{framework}", [])])


def record_dirs(wildcards):
    return [f"results/{wildcards.run}/records/{group}" for group in GROUPS]
