# The items of Snakemake's report (`snakemake --report report.zip`): the run summary
# and the review pages with their thumbnails.


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


# The report packs only the marked directory: a copy of the published pages (hard
# links) with the thumbnails they show inside it (archive_twins/deliver/reportpages.py). It
# runs after publish and reads the published pages, never the staged ones publish
# works on.
rule report_pages:
    input:
        published=f"{RESULTS}/state/published.json",
    output:
        pages=report(
            directory(f"{RESULTS}/report/pages"),
            htmlindex="index.html",
            caption="../report/pages.rst",
            category="Review pages",
        ),
    log:
        f"{RESULTS}/logs/report_pages/report_pages.log",
    localrule: True
    conda:
        "../envs/archive-twins.yaml"
    params:
        html=f"{RESULTS}/html",
        thumbs=f"{RESULTS}/thumbs",
    script:
        "../scripts/report_pages.py"
