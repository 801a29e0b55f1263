# duckdb aggregation: every shard's records -> archive.sqlite and json/.


rule aggregate:
    input:
        records=expand(f"{RESULTS}/shards/shard-{{shard}}.jsonl", shard=SHARDS),
        skipped=f"{RESULTS}/manifest/skipped.jsonl",
        pairs=expand(f"{RESULTS}/pairs/chunk-{{chunk}}.jsonl", chunk=CHUNKS),
    output:
        sqlite=f"{RESULTS}/archive.sqlite",
        json=directory(f"{RESULTS}/json"),
        registry=update(f"{RESULTS}/state/file_ids.json"),
    log:
        f"{RESULTS}/logs/aggregate/aggregate.log",
    conda:
        "../envs/archive-twins.yaml"
    threads: 1
    resources:
        **rule_resources("aggregate"),
    params:
        archive=ARCHIVE,
        shards=N_SHARDS,
    script:
        "../scripts/aggregate.py"
