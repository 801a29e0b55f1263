# Matching: one index over the whole archive, then chunked verification.
#
# `index` gathers one item per distinct raster (facts, pHashes), its word lists and
# inverted files of fine visual words from every shard; after the first run it
# merges the new rasters into the last good index (kept as hard links under
# `generations`/base) and searches their candidates once (cost grows with the new
# rasters). Each `match_chunk` job owns the pairs whose first raster (by pixel hash)
# falls in its chunk, takes their candidates from the index (searching them itself
# when the index did not), and verifies them; which chunk a pair belongs to depends
# only on the pair, so the results are the same for any number of shards or chunks.


rule index:
    input:
        records=expand(f"{RESULTS}/shards/shard-{{shard}}.jsonl", shard=SHARDS),
        signatures=expand(f"{RESULTS}/features/shard-{{shard}}.npz", shard=SHARDS),
        stamp=stamp("index"),
    output:
        index=directory(f"{RESULTS}/index"),
    log:
        f"{RESULTS}/logs/index/index.log",
    benchmark:
        f"{RESULTS}/benchmarks/index.tsv"
    conda:
        "../envs/archive-twins.yaml"
    threads: 1
    resources:
        **rule_resources("index"),
    params:
        matching=config["matching"],
        generations=f"{RESULTS}/state/index-generations",
    script:
        "../scripts/index.py"


rule match_chunk:
    input:
        index=f"{RESULTS}/index",
        stamp=stamp("match_chunk-{chunk}"),
    output:
        pairs=update(f"{RESULTS}/pairs/chunk-{{chunk}}.jsonl"),
    log:
        f"{RESULTS}/logs/match_chunk/{{chunk}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/match_chunk/{{chunk}}.tsv"
    conda:
        "../envs/archive-twins.yaml"
    threads: 1
    resources:
        **rule_resources("match_chunk"),
    params:
        n_chunks=N_CHUNKS,
        thumbs=f"{RESULTS}/thumbs",
        features=f"{RESULTS}/features",
        matching=config["matching"],
        decode=DECODE_SETTINGS,
        feature_settings=config["features"],
    script:
        "../scripts/match_chunk.py"
