# All records -> tidy table (CSV), seaborn figures, booktabs tables and the macros the text quotes.
rule analyse:
    input:
        records=record_dirs,
        # committed reference runs on GPUs, rendered in their own section when present
        reference=sorted(map(str, Path("results/reference").glob("*/records/**/*.json"))),
    output:
        report(
            directory("results/{run}/generated"),
            patterns=["figures/{figure}.pdf", "tables/{table}.tex"],
            caption="../report/generated.rst",
            category=generated_category,
            subcategory=generated_subcategory,
            labels=generated_labels,
        ),
    params:
        command=REPRODUCE,
    log:
        "results/{run}/logs/analyse.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/convbench.yaml"
    shell:
        "python -m convbench analyse --records {input.records} --out {output} --command {params.command:q} > {log} 2>&1"
