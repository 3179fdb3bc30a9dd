# convbench: config -> cells -> one record per cell -> tidy table -> figures, tables, macros -> PDF.
# The logic lives in the convbench package; the rules only call its command line.
from snakemake.utils import min_version

from convbench import config as convbench_config

min_version("9.0")

# A config given with --configfile stands alone: Snakemake would merge it into config/config.yaml key by
# key (and bring back every study it leaves out), so that file is read only when none is given.
CONFIGFILES = [str(f) for f in workflow.overwrite_configfiles] or ["config/config.yaml"]
with convbench_config.one_line_errors():
    for _file in CONFIGFILES:
        convbench_config.read(_file)  # names the file and line of a YAML error, refuses a key given twice


if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


envvars:
    "PATH",  # extended in common.smk so that jobs find this Python


# The schema, then what it cannot say (known names, valid architectures); then, where Snakemake runs the
# jobs on this machine, whether it can (a Slurm job checks its own node: convbench run does).
with convbench_config.one_line_errors():
    CELLS = convbench_config.check(config, ", ".join(CONFIGFILES))
    if workflow.local_exec and not (workflow.remote_exec or workflow.subprocess_exec):
        convbench_config.check_hardware(CELLS, ", ".join(CONFIGFILES))
RUN = config["run"]


include: "workflow/rules/common.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/scaling.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/paper.smk"


rule all:
    input:
        f"results/{RUN}/paper.pdf",
    default_target: True
