# Chunked matching: one job per pair of blocks (b1 <= b2) of the hash matrix.
#
# A block is a contiguous range of shards; a job compares every distinct image of
# block b1 with every one of block b2 (or within the block when b1 == b2), so a
# cluster can spread the n(n+1)/2 jobs, and a changed shard reruns only the n jobs
# of its block.


rule match_block:
    input:
        a=lambda wc: block_records(wc.b1),
        b=lambda wc: block_records(wc.b2),
        features=lambda wc: block_features(wc.b1, wc.b2),
    output:
        pairs=update(f"{RESULTS}/pairs/block-{{b1}}-{{b2}}.jsonl"),
    log:
        f"{RESULTS}/logs/match_block/{{b1}}-{{b2}}.log",
    conda:
        "../envs/archive-twins.yaml"
    threads: 1
    resources:
        **rule_resources("match_block"),
    params:
        store=f"{RESULTS}/thumbs",
        max_hamming=config["max_hamming"],
        geometric=config["geometric"],
    script:
        "../scripts/match_block.py"
