# Static review pages (side by side, flicker) from the JSON deliverable.


rule html:
    input:
        json=f"{RESULTS}/staging/json",
        stamp=stamp("html"),
    output:
        # staged: rule publish puts them in place with the tables they show
        html=directory(f"{RESULTS}/staging/html"),
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
