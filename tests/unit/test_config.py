"""Settings from the environment: the Celery queues."""

from __future__ import annotations

import pytest

from include.config import Settings


def test_queues_default_to_train_score_default(monkeypatch):
    for variable in ("PLATFORM_TRAIN_QUEUE", "PLATFORM_SCORE_QUEUE", "PLATFORM_DEFAULT_QUEUE"):
        monkeypatch.delenv(variable, raising=False)
    settings = Settings.from_env()
    queues = (settings.train_queue, settings.score_queue, settings.default_queue)
    assert queues == ("train", "score", "default")
    assert settings.queues == ("train", "score", "default")


def test_a_queue_shared_by_two_kinds_is_listed_once(monkeypatch):
    monkeypatch.setenv("PLATFORM_SCORE_QUEUE", "train")
    assert Settings.from_env().queues == ("train", "default")


@pytest.mark.parametrize("name", ["", "a,b", "two words"])
def test_a_bad_queue_name_fails_naming_the_variable(monkeypatch, name):
    monkeypatch.setenv("PLATFORM_SCORE_QUEUE", name)
    with pytest.raises(ValueError, match="PLATFORM_SCORE_QUEUE"):
        Settings.from_env()
