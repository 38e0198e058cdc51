"""`tools.testkit.version_of_day`: a version registered without a training run."""

from __future__ import annotations

import datetime as dt

from tools.testkit import version_of_day

DAY = dt.date(2025, 3, 1)


def test_a_day_version_spans_its_day_and_takes_the_fields_given():
    version = version_of_day(
        "churn", "run-1", DAY, family="dummy", artifact_uri="file:///m.skops", sha256="0" * 64, threshold=0.3
    )
    assert (version.window_start, version.window_end, version.holdout_start, version.holdout_end) == (
        DAY,
    ) * 4
    assert (version.threshold, version.params, version.metrics, version.trials) == (0.3, {}, {}, [])
    assert (version.reference, version.code_version, version.importance) == (None, "none", None)
