# Timed cells: training steps on a synthetic batch (speed), or one convolution at a time (layers).
# A measuring job takes every core the scheduler has, so that nothing else runs beside it.
rule measure:
    output:
        report(
            directory("results/{run}/records/{task}/{framework}"),
            patterns=["{cell}.json"],
            caption="../report/record.rst",
            category=record_category,
            subcategory="{task} records",
            labels=record_labels,
        ),
    params:
        cells=lambda wildcards: cells_json(f"{wildcards.task}/{wildcards.framework}"),
    log:
        "results/{run}/logs/{task}/{framework}.log",
    benchmark:
        "results/{run}/benchmarks/{task}/{framework}.tsv"
    threads: workflow.cores
    resources:
        mem_mb=4000,
        runtime=90,
        cpus_per_task=lambda wildcards: cpus(f"{wildcards.task}/{wildcards.framework}"),  # Slurm's; threads: local
        gpu=lambda wildcards: gpus(f"{wildcards.task}/{wildcards.framework}"),
    conda:
        "../../envs/convbench.yaml"
    shell:
        "python -m convbench run --cells-json {params.cells:q} --out {output} > {log} 2>&1"
