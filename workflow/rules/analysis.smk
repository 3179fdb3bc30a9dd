# All records -> one tidy table; then one job per study: its figures, tables and macros, drawn from that table.
rule tidy:
    input:
        records=record_dirs,
        code=analysis_code(),
    output:
        tidy="results/{run}/generated/tidy.csv",
        samples="results/{run}/generated/samples.csv",
        environment="results/{run}/generated/environment.csv",
    log:
        "results/{run}/logs/tidy.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/convbench.yaml"
    shell:
        "python -m convbench tidy --records {input.records} --out results/{wildcards.run}/generated > {log} 2>&1"


rule analyse:
    input:
        tidy=rules.tidy.output,
        code=lambda wildcards: analysis_code(f"{wildcards.study}/*.py"),
        # committed reference runs on GPUs, rendered in their own section when present (and projected by scaling)
        reference=lambda wildcards: REFERENCE_RECORDS if wildcards.study in ("reference", "scaling") else [],
    output:
        report(
            directory("results/{run}/generated/{study}"),
            patterns=["figures/{figure}.pdf", "tables/{table}.tex"],
            caption="../report/generated.rst",
            category=lambda wildcards: STUDIES[wildcards.study].title,
            subcategory=lambda wildcards: "Figures" if wildcards.get("figure") else "Tables",
            labels=lambda wildcards: {"figure": wildcards.figure} if wildcards.get("figure") else {"table": wildcards.table},
        ),
    params:
        command=REPRODUCE,
        captions=CAPTIONS,
        projection=json.dumps(config.get("projection") or {}),
        margins=json.dumps(config.get("margins") or {}),
    log:
        "results/{run}/logs/analyse/{study}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/convbench.yaml"
    shell:
        "python -m convbench analyse --out results/{wildcards.run}/generated --study {wildcards.study}"
        " --command {params.command:q} --projection {params.projection:q} --margins {params.margins:q} > {log} 2>&1"
