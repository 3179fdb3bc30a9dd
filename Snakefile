# convbench: config -> cells -> one record per cell -> tidy table -> figures, tables, macros -> PDF.
# The logic lives in the convbench package; the rules only call its command line.
from snakemake.utils import min_version, validate

from convbench.config import check as check_config

min_version("9.0")


configfile: "config/config.yaml"


envvars:
    "PATH",  # extended in common.smk so that jobs find this Python


validate(config, "workflow/schemas/config.schema.yaml")
CELLS = check_config(config)  # what the schema cannot say: known names, valid architectures
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
