# The hand-written LaTeX in paper/ plus the generated files -> results/<run>/paper.pdf (latexmk, pdflatex).
rule paper:
    input:
        generated=expand("results/{{run}}/generated/{study}", study=STUDIES),
        sources=list(map(str, Path("paper").rglob("*.tex"))) + ["paper/refs.bib"],
    output:
        report("results/{run}/paper.pdf", caption="../report/paper.rst", category="Paper"),
    log:
        "results/{run}/logs/paper.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/convbench.yaml"
    shell:
        "python -m convbench paper --generated results/{wildcards.run}/generated --pdf {output} > {log} 2>&1"
