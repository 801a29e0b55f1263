# Static review pages (side by side, flicker) from the JSON deliverable.


rule html:
    input:
        json=f"{RESULTS}/json",
    output:
        # update(): the last good pages stay until new ones are complete
        html=update(directory(f"{RESULTS}/html")),
    log:
        f"{RESULTS}/logs/html/html.log",
    conda:
        "../envs/archive-twins.yaml"
    threads: 1
    resources:
        **rule_resources("html"),
    params:
        archive=ARCHIVE_PARAM,
    script:
        "../scripts/html.py"
