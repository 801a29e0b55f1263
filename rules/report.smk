# The run summary, an item of Snakemake's report (`snakemake --report report.html`).


rule summary:
    input:
        json=f"{RESULTS}/staging/json",
    output:
        tsv=report(
            f"{RESULTS}/report/summary.tsv",
            caption="../report/summary.rst",
            category="Summary",
        ),
    log:
        f"{RESULTS}/logs/summary/summary.log",
    localrule: True
    conda:
        "../envs/archive-twins.yaml"
    script:
        "../scripts/summary.py"
