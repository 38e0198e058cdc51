from __future__ import annotations

import datetime as dt
import re

from include.ui.charts import Series, champion_timeline, curve_chart, drift_heatmap, histogram

D1, D2 = dt.date(2025, 3, 1), dt.date(2025, 3, 2)


def test_a_curve_is_a_polyline_of_its_points_with_the_threshold_marked() -> None:
    svg = curve_chart(
        "ROC", "fpr", "tpr", [Series("v2 <cand>", "candidate", [0, 0.5, 1], [0, 0.8, 1], (0.2, 0.6))]
    )
    [points] = re.findall(r' points="([^"]+)"', svg)
    assert len(points.split()) == 3
    assert 'data-points="3"' in svg and 'data-x="0.2000" data-y="0.6000"' in svg
    assert "v2 &lt;cand&gt;" in svg and "<cand>" not in svg  # names are escaped


def test_the_heatmap_has_a_cell_per_measure_carrying_its_psi_and_grade() -> None:
    cells = [(D1, "tenure", 0.31, "alert"), (D2, "tenure", 0.05, "ok"), (D2, "gender", 0.12, "warn")]
    svg = drift_heatmap(["gender", "tenure"], [D1, D2], cells)
    assert svg.count('<rect class="cell ') == 3
    assert (
        '<rect class="cell alert"' in svg
        and 'data-ds="2025-03-01" data-feature="tenure" data-psi="0.3100"' in svg
    )


def test_the_histogram_has_a_bar_per_bin_scaled_to_the_largest() -> None:
    svg = histogram([0, 5, 10], height=20)
    assert re.findall(r'height="([\d.]+)" data-rows="(\d+)"', svg) == [
        ("0.0", "0"),
        ("10.0", "5"),
        ("20.0", "10"),
    ]


def test_the_timeline_has_a_band_per_champion() -> None:
    svg = champion_timeline([(1, D1, D2), (3, D2, None)], D2)
    assert re.findall(r'data-version="(\d+)"', svg) == ["1", "3"]
    assert "v3: champion from 2025-03-02</title>" in svg
    assert "No champion yet" in champion_timeline([], None)
