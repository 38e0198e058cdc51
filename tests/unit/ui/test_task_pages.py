"""A version page per task: a regression version's residuals and calibration, a multiclass one's
confusion matrix, per-class table and one-vs-rest ROC curves (the stored pictures, drawn)."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from include.platform.schema import upgrade
from include.registry.registry import Registry
from include.training.curves import MAX_POINTS, multiclass_curves, regression_curves
from include.ui.app import platform_db
from tests.unit.ui.test_api import APP, auth_manager, token  # noqa: F401 (fixtures)
from tools.testkit import version_of_day

CLASSES = ["VF", "F", "M", "L"]


@pytest.fixture(scope="module")
def pages(tmp_path_factory, auth_manager):  # noqa: F811
    engine = sa.create_engine(f"sqlite:///{tmp_path_factory.mktemp('ui-tasks') / 'platform.db'}")
    upgrade(engine)
    rng = np.random.default_rng(0)
    y = rng.normal(100, 30, 500)
    labels = rng.integers(0, 4, 400)
    proba = rng.dirichlet(np.ones(4), 400)
    proba[np.arange(400), labels] += 1
    proba /= proba.sum(axis=1, keepdims=True)
    registry = Registry(engine)
    for n, curves in enumerate(
        (regression_curves(y, y + rng.normal(0, 10, 500)), multiclass_curves(labels, proba, CLASSES)), start=1
    ):
        registry.register(
            version_of_day(
                "churn",
                f"run-{n}",
                dt.date(2025, 3, n),
                family="random_forest",
                artifact_uri="file:///m",
                sha256=f"{n:064x}",
                curves=curves,
            )
        )
    APP.dependency_overrides[platform_db] = lambda: engine
    client = TestClient(APP)
    client.cookies.set("_token", token(auth_manager, "viewer"))
    yield client
    APP.dependency_overrides.clear()


def test_a_regression_version_shows_its_residuals_and_calibration(pages):
    page = pages.get("/churn/versions/1")
    assert page.status_code == 200, page.text
    assert 'id="regression"' in page.text and 'data-rows="500"' in page.text  # the residuals' histogram
    assert page.text.count('<tr><td class="num">') == 10  # a row per tenth of the predictions
    scatters = re.findall(r'class="chart scatter-chart".*?data-points="(\d+)"', page.text)
    assert scatters == [str(min(500, MAX_POINTS))] * 2  # predicted vs actual, residuals vs predicted
    body = pages.get("/api/use-cases/churn/versions/1").json()
    assert body["curves"]["kind"] == "regression" and len(body["curves"]["calibration"]["rows"]) == 10


def test_a_multiclass_version_shows_its_confusion_matrix_classes_and_curves(pages):
    page = pages.get("/churn/versions/2")
    assert page.status_code == 200, page.text
    for name in CLASSES:
        assert f'data-class="{name}"' in page.text and f'data-series="{name}"' in page.text
    body = pages.get("/api/use-cases/churn/versions/2").json()["curves"]
    assert body["classes"] == CLASSES
    assert all(abs(sum(row) - 1) < 1e-3 for row in body["confusion"]["normalised"])


def test_the_cli_prints_the_same_pictures_as_text(pages):
    from include.cli import version_text
    from include.registry.read_models import version_detail
    from include.ui.app import platform_db as _  # noqa: F401
    from include.usecases.spec import get_spec

    engine = APP.dependency_overrides[platform_db]()
    regression = version_text(version_detail(Registry(engine), get_spec("churn"), 1))
    assert "calibration: mean label per tenth of the predictions (500 rows)" in regression
    assert "residuals (actual - predicted)" in regression and regression.count("\n") > 40  # 20 bins
    assert "threshold" not in regression.splitlines()[2]
    multiclass = version_text(version_detail(Registry(engine), get_spec("churn"), 2))
    assert "per class (400 holdout rows)" in multiclass
    assert "confusion matrix, each actual class's row normalised" in multiclass
