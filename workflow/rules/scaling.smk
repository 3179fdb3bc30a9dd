# Several devices: one job per framework and device count. PyTorch runs one process per device under
# torchrun (gloo on the CPU, nccl on GPUs); TensorFlow one process over logical devices or GPUs.
rule scaling:
    output:
        directory("results/{run}/records/scaling/{framework}{devices}"),
    params:
        cells=lambda wildcards: cells_json(f"scaling/{wildcards.framework}{wildcards.devices}"),
    log:
        "results/{run}/logs/scaling/{framework}{devices}.log",
    benchmark:
        "results/{run}/benchmarks/scaling/{framework}{devices}.tsv"
    threads: workflow.cores
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../../envs/convbench.yaml"
    shell:
        "python -m convbench run --cells-json {params.cells:q} --out {output} > {log} 2>&1"
