# Speed cells: timed training steps on a synthetic batch. A measuring job takes every core the
# scheduler has, so that nothing else runs beside it and disturbs the clock.
rule measure:
    output:
        directory("results/{run}/records/speed/{framework}"),
    params:
        cells=lambda wildcards: cells_json("speed", wildcards.framework),
    log:
        "results/{run}/logs/speed/{framework}.log",
    benchmark:
        "results/{run}/benchmarks/speed/{framework}.tsv"
    threads: workflow.cores
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/convbench.yaml"
    shell:
        "python -m convbench run --cells-json {params.cells:q} --out {output} > {log} 2>&1"
