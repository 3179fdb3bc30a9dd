# Train cells: accuracy on the configured data set, loss and accuracy on both splits per epoch.
rule train:
    output:
        directory("results/{run}/records/train/{framework}"),
    params:
        cells=lambda wildcards: cells_json("train", wildcards.framework),
    log:
        "results/{run}/logs/train/{framework}.log",
    benchmark:
        "results/{run}/benchmarks/train/{framework}.tsv"
    threads: config["threads"]
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../../envs/convbench.yaml"
    shell:
        "python -m convbench run --cells-json {params.cells:q} --out {output} > {log} 2>&1"
