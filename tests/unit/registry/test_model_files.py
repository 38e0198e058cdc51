from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from include.registry import model_files
from include.registry.model_files import TRUSTED_TYPES, FittedModel, dump_model, load_model, sha256_hex
from include.training.estimators import Trial, build_model, sample_trials
from include.training.preprocess import split_xy
from include.usecases.spec import ESTIMATORS, Features, UseCase
from tests.unit.training.marketing import contact_days, with_contact_days


def fitted(spec: UseCase, frame: pd.DataFrame, family: str) -> FittedModel:
    trial = sample_trials([family], 1, random_state=spec.training.random_state)[0]
    X, y = split_xy(frame, spec)
    return FittedModel(build_model(spec, family, trial.params).fit(X, y), 0.3, trial, {"fitted_by": "test"})


@pytest.fixture(scope="module")
def sample(churn_split: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    return churn_split[0].head(800)


def test_sha256_hex_is_the_hex_digest() -> None:
    assert sha256_hex(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize("family", ESTIMATORS)
def test_every_family_round_trips(spec: UseCase, sample: pd.DataFrame, family: str) -> None:
    model = fitted(spec, sample, family)
    data = dump_model(model, {"use_case": "churn", "version": 3})
    loaded = load_model(data, sha256_hex(data))
    assert loaded.threshold == 0.3 and loaded.trial == model.trial
    assert loaded.metadata == {"fitted_by": "test", "use_case": "churn", "version": 3}
    np.testing.assert_array_equal(loaded.predict_proba(sample), model.predict_proba(sample))


def test_the_allow_list_is_exactly_what_the_pipelines_need(spec: UseCase, sample: pd.DataFrame) -> None:
    with_dates = spec.model_copy(update={"features": Features(numeric=("tenure",), datetime=("ds",))})
    derived = Features(numeric=("tenure",), derived={"per_month": "TotalCharges / tenure"})
    with_derived = spec.model_copy(update={"features": derived})
    marketing = with_contact_days(spec)  # the new grammar, and indicators for missing values
    needed: set[str] = set()
    extra = [
        (with_dates, "logistic_regression", sample),
        (with_derived, "logistic_regression", sample),
        (marketing, "hist_gradient_boosting", contact_days(sample)),
    ]
    for use_case, family, rows in [*((spec, f, sample) for f in ESTIMATORS), *extra]:
        data = dump_model(fitted(use_case, rows, family), {})
        needed |= set(sio.get_untrusted_types(data=data))
    assert needed == set(TRUSTED_TYPES)


@pytest.mark.parametrize("family", ["logistic_regression", "random_forest"])
def test_a_model_with_the_new_grammar_and_indicators_round_trips(
    spec: UseCase, sample: pd.DataFrame, family: str
) -> None:
    marketing = with_contact_days(spec)
    rows = contact_days(sample)
    model = fitted(marketing, rows, family)
    names = list(model.pipeline.named_steps["preprocess"].get_feature_names_out())
    assert {"numeric_missing__d_missing", "derived_missing__contacted_missing"} <= set(names)
    data = dump_model(model, {})
    loaded = load_model(data, sha256_hex(data))
    np.testing.assert_array_equal(loaded.predict_proba(rows), model.predict_proba(rows))
    assert list(loaded.pipeline.named_steps["preprocess"].get_feature_names_out()) == names


def test_a_model_with_derived_features_round_trips(spec: UseCase, sample: pd.DataFrame) -> None:
    features = spec.features.model_copy(update={"derived": {"log_total": "log1p(TotalCharges)"}})
    model = fitted(spec.model_copy(update={"features": features}), sample, "logistic_regression")
    data = dump_model(model, {})
    np.testing.assert_array_equal(
        load_model(data, sha256_hex(data)).predict_proba(sample), model.predict_proba(sample)
    )


def test_a_tampered_file_is_refused_before_anything_is_read(
    spec: UseCase, sample: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = dump_model(fitted(spec, sample, "dummy"), {})
    expected = sha256_hex(data)
    tampered = data[:-1] + bytes([data[-1] ^ 1])

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("deserialised before the checksum was checked")

    monkeypatch.setattr(model_files.sio, "loads", never)
    monkeypatch.setattr(model_files.sio, "get_untrusted_types", never)
    with pytest.raises(ValueError, match=f"checksum mismatch: expected sha256 {expected}"):
        load_model(tampered, expected)


def test_the_checksum_may_be_upper_case(spec: UseCase, sample: pd.DataFrame) -> None:
    data = dump_model(fitted(spec, sample, "dummy"), {})
    assert load_model(data, sha256_hex(data).upper()).trial.family == "dummy"


def test_an_untrusted_type_is_refused(spec: UseCase, sample: pd.DataFrame) -> None:
    model = build_model(spec, "dummy", {})
    evil = Pipeline([("run", FunctionTransformer(os.system)), *model.steps])
    data = dump_model(FittedModel(evil, 0.5, Trial("dummy-0", "dummy", {})), {})
    with pytest.raises(ValueError, match=r"untrusted types: \['(posix|nt).system'\]"):
        load_model(data, sha256_hex(data))


def test_a_file_that_is_not_a_model_is_refused() -> None:
    data = sio.dumps({"threshold": 0.5})
    with pytest.raises(ValueError, match="not a model file"):
        load_model(data, sha256_hex(data))


def test_metadata_must_be_json(spec: UseCase, sample: pd.DataFrame) -> None:
    with pytest.raises(TypeError):
        dump_model(fitted(spec, sample, "dummy"), {"when": object()})


def _zip_of(name: str, data: bytes) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "content",
    [
        b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94.",
        b"PAR1\x15\x04\x15\x10\x15\x14L\x15\x02\x15\x00\x12\x00\x00PAR1",
        b'{"pipeline": "LogisticRegression", "threshold": 0.5}',
        b"",
        _zip_of("model.pkl", b"not skops"),
    ],
    ids=["pickle", "parquet", "json", "empty", "zip-not-skops"],
)
def test_a_model_file_replaced_by_another_format_fails_naming_the_version(tmp_path, content) -> None:
    """Finding 6: a file of another format failed as BadZipFile, naming no version. Even with the
    registry's checksum updated to match (a replaced file and record), it is refused by version."""
    from types import SimpleNamespace

    from include.io.stores import LocalStore
    from include.registry.model_files import ModelFileError, load_version_model

    lake = LocalStore(tmp_path)
    lake.put_bytes("models/churn/v3.skops", content)
    version = SimpleNamespace(
        use_case="churn",
        version=3,
        artifact_uri=lake.uri("models/churn/v3.skops"),
        sha256=sha256_hex(content),
    )

    with pytest.raises(ModelFileError, match=r"^churn v3 \(file://.*v3\.skops\): not a model file"):
        load_version_model(lake, version)
