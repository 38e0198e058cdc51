"""`make bench`: the scoring and ingest paths against the naive pandas way and the raw bulk limits."""
