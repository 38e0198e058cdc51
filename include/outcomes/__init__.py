"""Outcomes that arrive after the scored day: their ingest, the realised performance of every
matured scored day, and decay (`include.outcomes.realised`, `.ingest`, `.task`)."""
