import json
import os
import sys
from pathlib import Path

from convbench.analysis import registry
from convbench.analysis.reference.runs import gpu_runs
from convbench.cells import groups, write_cells

# Jobs call `python`: let that be the interpreter running Snakemake (say .venv's, even when not
# activated). A conda env that --sdm conda activates for a job still comes first on its PATH.
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])

# "task/framework" (and "scaling/<framework><devices>", "train/<framework>/<network and data>") -> cells: a process (or one per device) per group and
# launch, importing its framework once for all its cells; one job per group, except the timed tasks (speed, layers),
# whose job runs every framework's group, their launches taking turns.
GROUPS = groups(CELLS)
MEASURED_TASKS = ("speed", "layers")  # one measuring job per task, for every framework (measure.smk)


wildcard_constraints:
    run=r"[A-Za-z0-9._-]+",
    framework="torch|tensorflow",
    task="|".join(MEASURED_TASKS),
    study="|".join(registry.STUDIES),
    devices=r"\d+",
    shard=r"[A-Za-z0-9._-]+",


# How to reproduce this run, quoted in the paper: the config files and the profile that made it (a workflow
# profile of the command line, or profiles/default, which Snakemake picks itself), not volatile flags.
def _profile():
    for flag in ("--profile", "--workflow-profile"):
        if flag in sys.argv[:-1]:
            return f"{flag} {sys.argv[sys.argv.index(flag) + 1]}"
    return None


REPRODUCE = " ".join(["snakemake --cores all", *(f"--configfile {os.path.relpath(f)}" for f in workflow.overwrite_configfiles),
                      *filter(None, [_profile()])])


def cells_file(run, job, *groups):
    """The file that hands a job its cells, results/<run>/cells/<job>-<hash>.json (Linux refuses a command-line
    argument over 128 KiB), written when Snakemake asks for the job. A parameter, not an input: its name changes
    with the cells, and the job reruns then, as it did when the cells were the parameter."""
    return str(write_cells(f"results/{run}/cells", job, [c for group in groups for c in GROUPS.get(group, [])]))


def task_groups(task):
    """The groups (task/framework) that one measuring job runs together."""
    return [group for group, cells in GROUPS.items() if cells[0].task == task]


def record_dirs(wildcards):
    """One folder per job: records/<task> for a measuring job (a folder per framework in it), else records/<group>."""
    folders = [cells[0].task if cells[0].task in MEASURED_TASKS else group for group, cells in GROUPS.items()]
    return [f"results/{wildcards.run}/records/{folder}" for folder in dict.fromkeys(folders)]


# Cluster resources of a group (task/framework, scaling/<framework><devices>): a measuring job takes the most of
# its task's groups.
# A multi-device cell's job holds all its devices, and `threads` cores for each device's process; its
# launcher (torchrun, or TensorFlow's worker) runs inside the job.
def gpus(group):
    return max((cell.devices for cell in GROUPS.get(group, []) if cell.device == "cuda"), default=0)


def cpus(group):
    """Per task: a job over several nodes has one task per node, holding that node's devices."""
    return max((cell.threads * cell.devices // nodes(group) for cell in GROUPS.get(group, [])), default=1)


def nodes(group):
    """A scaling job spans scaling.nodes nodes (one srun task each), but one device stays on one node."""
    return max((cell.settings.get("nodes", 1) for cell in GROUPS.get(group, [])), default=1)


# The studies and their figures: the analysis's registry is the only list (convbench/analysis/registry.py).
STUDIES = registry.STUDIES
CAPTIONS = {name: figure.title for name, (_, figure) in registry.FIGURES.items()}
REFERENCE_RECORDS = sorted(str(p) for run in gpu_runs("results/reference") for p in run.glob("records/**/*.json"))
ANALYSIS = Path(registry.__file__).parent


def analysis_code(*patterns):
    """The analysis's shared modules (analysis/*.py), plus the files matching patterns (a study's package): a study
    reruns when its code, or code it shares, changes."""
    return sorted({str(p) for pattern in ("*.py", *patterns) for p in ANALYSIS.glob(pattern)})


def _record(wildcards, output):
    """A record of a job's output folder (a measuring job's are one folder down, per framework)."""
    return json.loads(next(Path(output[0]).rglob(f"{wildcards.cell}.json")).read_text())


def record_category(wildcards, output):
    """A record goes under its study's category, beside that study's figures and tables."""
    study = _record(wildcards, output)["cell"]["study"]
    return STUDIES[study].title if study in STUDIES else study


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
