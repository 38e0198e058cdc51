"""The CLI's refusals: an unknown use case, a version out of range, a missing connection; each is one
line on stderr naming what is wrong and exit status 2, never a traceback."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from include import cli
from include.platform.schema import upgrade
from tests.conftest import use_platform


@pytest.fixture
def platform(tmp_path, monkeypatch):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'platform.db'}")
    upgrade(engine)
    use_platform(monkeypatch, engine, tmp_path / "lake")
    yield engine
    engine.dispose()


def refusal(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as stopped:
        code = cli.main(list(argv))
        raise SystemExit(code)
    out, err = capsys.readouterr()
    assert stopped.value.code == 2
    assert "Traceback" not in err and "error" not in out
    return err.strip()


@pytest.mark.parametrize("command", ["models", "gate", "runs", "trainings", "predictions", "drift"])
@pytest.mark.parametrize("name", ["nope", "../../etc"])
def test_an_unknown_use_case_is_named(platform, capsys, command, name):
    assert refusal(capsys, command, name).startswith(f"error: no use case named {name!r}")


@pytest.mark.parametrize("version", ["9223372036854775808", "0", "-1", "two"])
def test_a_version_out_of_range_is_refused_by_the_argument(platform, capsys, version):
    assert "argument --version" in refusal(capsys, "models", "churn", "--version", version)


def test_a_known_use_case_with_no_version_names_the_known_ones(platform, capsys):
    assert refusal(capsys, "models", "churn", "--version", "3") == (
        "error: churn: no model version 3 (known versions: none registered)"
    )


def test_a_missing_connection_is_named(monkeypatch, capsys):
    monkeypatch.setenv("PLATFORM_DB_CONN_ID", "no_such_connection")
    assert "no_such_connection" in refusal(capsys, "runs", "churn")
