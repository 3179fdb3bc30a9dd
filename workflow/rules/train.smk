# Train cells: accuracy on the configured data set, loss and accuracy on both splits per epoch.
rule train:
    output:
        report(
            directory("results/{run}/records/train/{framework}"),
            patterns=["{cell}.json"],
            caption="../report/record.rst",
            category=record_category,
            subcategory="train records",
            labels=record_labels,
        ),
    params:
        cells=lambda wildcards: cells_file(wildcards.run, f"train-{wildcards.framework}", f"train/{wildcards.framework}"),
    log:
        "results/{run}/logs/train/{framework}.log",
    benchmark:
        "results/{run}/benchmarks/train/{framework}.tsv"
    threads: config["threads"]
    resources:
        mem_mb=4000,
        runtime=120,
        cpus_per_task=lambda wildcards: cpus(f"train/{wildcards.framework}"),
        gpu=lambda wildcards: gpus(f"train/{wildcards.framework}"),
    conda:
        "../../envs/convbench.yaml"
    shell:
        "python -m convbench run --cells-json {params.cells:q} --out {output} > {log} 2>&1"
