"""Index: the records and signatures of every shard in, one index of the archive out.

Takes the shard records (`ingest.shard`) and signature bundles (`ingest.features`).
Gives the index directory the `index` job writes (item columns, item-major word
lists, the inverted file, common words, the generation and the stored delta) and
the `Index` that the matching jobs query for hash and word candidates
(`wordsearch`, `specksearch`). Nothing is imported here.
"""
