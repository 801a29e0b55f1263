# Publish the deliverables: archive.sqlite, json/, html/ and csv/ are built in
# {results}/staging/ and replaced together, only after every stage succeeded.
#
# They are not declared as outputs: Snakemake deletes declared outputs before a
# job runs and after it fails, and restores update() outputs with a fresh mtime
# (which would then look up to date). Instead this job's output is a marker, and
# rules/common.smk drops the marker when a deliverable is missing, so a deleted
# deliverable is published again. A failed run leaves the last good set in place.


rule publish:
    input:
        sqlite=f"{RESULTS}/staging/archive.sqlite",
        json=f"{RESULTS}/staging/json",
        html=f"{RESULTS}/staging/html",
        csv=f"{RESULTS}/staging/csv",
    output:
        marker=f"{RESULTS}/state/published.json",
    log:
        f"{RESULTS}/logs/publish/publish.log",
    localrule: True
    conda:
        "../envs/archive-twins.yaml"
    script:
        "../scripts/publish.py"
