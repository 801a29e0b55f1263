# Per-shard stage: sha256, libvips decode of page 0, pixel hash, facts, thumbnail,
# pHashes, and the RootSIFT features of the geometric stage: every per-file step in
# one job per shard, so a rerun touches one job per changed shard.


rule decode_shard:
    input:
        manifest=f"{RESULTS}/manifest/shard-{{shard}}.jsonl",
        # changes for `file_check: full` and after a failed run (rules/common.smk)
        rerun=f"{RESULTS}/manifest/rerun.json",
        # what the outputs must be built from; rewritten to force the job (ledger.py)
        stamp=stamp("decode_shard-{shard}"),
    output:
        records=update(f"{RESULTS}/shards/shard-{{shard}}.jsonl"),
        features=update(f"{RESULTS}/features/shard-{{shard}}.npz"),
    log:
        f"{RESULTS}/logs/decode_shard/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/decode_shard/{{shard}}.tsv"
    conda:
        "../envs/archive-twins.yaml"
    threads: 1
    resources:
        **rule_resources("decode_shard"),
    params:
        archive=ARCHIVE_PARAM,
        store=f"{RESULTS}/thumbs",
        thumb_size=config["thumb_size"],
        thumb_quality=config["thumb_quality"],
        max_pixels=config["max_pixels"],
        geometric=config["matching"]["geometric"],
        feature_max_side=config["features"]["max_side"],
        n_features=config["features"]["n_features"],
    script:
        "../scripts/decode_shard.py"
