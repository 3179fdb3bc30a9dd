# Timed cells: training steps on a synthetic batch (speed), or one convolution at a time (layers). One job per
# task measures every framework's cells, their launches interleaved (launch 1 of PyTorch, launch 1 of TensorFlow,
# launch 2 of each, ...): a ratio of the two frameworks pairs launches that ran next to each other, not jobs that
# ran minutes apart. A measuring job takes every core the scheduler has, so that nothing else runs beside it.
rule measure:
    output:
        report(
            directory("results/{run}/records/{task}"),
            patterns=["{framework}/{cell}.json"],
            caption="../report/record.rst",
            category=record_category,
            subcategory="{task} records",
            labels=record_labels,
        ),
    params:
        cells=lambda wildcards: cells_file(wildcards.run, wildcards.task, *task_groups(wildcards.task)),
    log:
        "results/{run}/logs/{task}.log",
    benchmark:
        "results/{run}/benchmarks/{task}.tsv"
    threads: workflow.cores
    resources:
        mem_mb=4000,
        runtime=180,
        cpus_per_task=lambda wildcards: max(cpus(g) for g in task_groups(wildcards.task)),  # Slurm's; threads: local
        gpu=lambda wildcards: max(gpus(g) for g in task_groups(wildcards.task)),
    conda:
        "../../envs/convbench.yaml"
    shell:
        "python -m convbench run --cells-json {params.cells:q} --under {output} > {log} 2>&1"
