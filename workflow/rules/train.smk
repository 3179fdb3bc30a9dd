# Train cells: accuracy on the configured data set, loss and accuracy on both splits per epoch. One job per network and
# data (its seeds together: convbench.cells.Cell.group), each on train.threads cores, side by side.
rule train:
    output:
        report(
            directory("results/{run}/records/train/{framework}/{shard}"),
            patterns=["{cell}.json"],
            caption="../report/record.rst",
            category=record_category,
            subcategory="train records",
            labels=record_labels,
        ),
    params:
        cells=lambda wildcards: cells_file(wildcards.run, f"train-{wildcards.framework}-{wildcards.shard}",
                                             f"train/{wildcards.framework}/{wildcards.shard}"),
    log:
        "results/{run}/logs/train/{framework}/{shard}.log",
    benchmark:
        "results/{run}/benchmarks/train/{framework}/{shard}.tsv"
    threads: lambda wildcards: cpus(f"train/{wildcards.framework}/{wildcards.shard}")
    resources:
        mem_mb=4000,
        runtime=120,
        cpus_per_task=lambda wildcards: cpus(f"train/{wildcards.framework}/{wildcards.shard}"),
        gpu=lambda wildcards: gpus(f"train/{wildcards.framework}/{wildcards.shard}"),
    conda:
        "../../envs/convbench.yaml"
    shell:
        "python -m convbench run --cells-json {params.cells:q} --out {output} > {log} 2>&1"
