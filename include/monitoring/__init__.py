"""Per-feature drift of a scored day against the champion's training reference, as pure functions.

`reference` (the training rows' buckets and shares), `counting` (a day's rows into those buckets),
`statistics` (PSI, its sampling noise, a feature's grade) and `policy` (when alerts ask for a retrain).
"""
