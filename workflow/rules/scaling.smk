# Several devices: one job per framework and device count. PyTorch runs one process per device under
# torchrun (gloo on the CPU, nccl on GPUs); TensorFlow one process over logical devices or GPUs. With
# scaling.nodes > 1 the job is an allocation of that many nodes, one task each, and the command starts a
# launcher per node with srun (convbench.parallel.launch).
rule scaling:
    output:
        report(
            directory("results/{run}/records/scaling/{framework}{devices}"),
            patterns=["{cell}.json"],
            caption="../report/record.rst",
            category=record_category,
            subcategory="scaling records",
            labels=record_labels,
        ),
    params:
        cells=lambda wildcards: cells_file(wildcards.run, f"scaling-{wildcards.framework}{wildcards.devices}",
                                           f"scaling/{wildcards.framework}{wildcards.devices}"),
    log:
        "results/{run}/logs/scaling/{framework}{devices}.log",
    benchmark:
        "results/{run}/benchmarks/scaling/{framework}{devices}.tsv"
    threads: workflow.cores
    resources:
        mem_mb=8000,
        runtime=60,
        cpus_per_task=lambda wildcards: cpus(f"scaling/{wildcards.framework}{wildcards.devices}"),
        gpu=lambda wildcards: gpus(f"scaling/{wildcards.framework}{wildcards.devices}"),
        nodes=lambda wildcards: nodes(f"scaling/{wildcards.framework}{wildcards.devices}"),
        tasks=lambda wildcards: nodes(f"scaling/{wildcards.framework}{wildcards.devices}"),
    conda:
        "../../envs/convbench.yaml"
    shell:
        "python -m convbench run --cells-json {params.cells:q} --out {output} > {log} 2>&1"
