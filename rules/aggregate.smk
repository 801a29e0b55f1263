# duckdb aggregation: every shard's records -> archive.sqlite and json/.


rule aggregate:
    input:
        records=[f"{RESULTS}/shards/shard-{s}.jsonl" for s in SHARDS],
        skipped=f"{RESULTS}/manifest/skipped.jsonl",
        pairs=expand(f"{RESULTS}/pairs/chunk-{{chunk}}.jsonl", chunk=CHUNKS),
        # a curator's decisions.csv, when there is one (rules/common.smk)
        decisions=lambda wildcards: [str(DECISIONS)] if DECISIONS else [],
        stamp=stamp("aggregate"),
    output:
        # staged: rule publish replaces the deliverables once html/ is built too
        sqlite=f"{RESULTS}/staging/archive.sqlite",
        json=directory(f"{RESULTS}/staging/json"),
        csv=directory(f"{RESULTS}/staging/csv"),
        registry=update(f"{RESULTS}/state/file_ids.json"),
    log:
        f"{RESULTS}/logs/aggregate/aggregate.log",
    conda:
        "../envs/archive-twins.yaml"
    threads: 1
    resources:
        **rule_resources("aggregate"),
    params:
        archive=ARCHIVE_PARAM,
        shards=N_SHARDS,
        master_paths=MASTER_PATHS,
    script:
        "../scripts/aggregate.py"
