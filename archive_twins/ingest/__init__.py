"""Ingest: the archive in, one record and one signature per file out.

Takes the archive folder and the results directory. Gives the scan's manifests
(`scan`, after the `guard` checks), per shard the file records (`shard`, `decode`,
`hashing`, `frame`, `texture`) and the signature bundle (`features`), the
thumbnails of the content store (`store`), the file ids (`registry`) and the
clean-up of killed jobs' temporaries (`leftovers`). Imports only the shared
top-level modules; nothing is imported here, so a job starts without libvips or
OpenCV until it needs them.
"""
