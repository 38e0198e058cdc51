"""LocalStore's all-or-nothing writes, and the lake's Parquet round trip."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from include.io import stores
from include.io.lake import partition_key, read_frame, write_frame
from include.io.stores import LocalStore

KEY = "raw/churn/ds=2025-03-31/part-0.parquet"


@pytest.fixture
def store(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "lake")


def files_under(store: LocalStore) -> list[str]:
    return sorted(p.relative_to(store.root).as_posix() for p in store.root.rglob("*") if p.is_file())


def test_put_read_and_delete(store):
    assert store.list_keys("a/") == []

    store.put_bytes("a/b.txt", b"first")
    store.put_bytes("a/b.txt", b"second")

    assert store.list_keys("a/") == ["a/b.txt"]
    assert store.read_bytes("a/b.txt") == b"second"
    store.delete("a/b.txt")
    assert store.list_keys("a/") == []
    store.delete("a/b.txt")  # deleting what is gone is not an error


def test_put_file_copies_the_file(store, tmp_path):
    source = tmp_path / "local.csv"
    source.write_bytes(b"id,x\n1,2\n")

    store.put_file("billing/ds=2025-03-31/billing.csv", source)

    assert store.read_bytes("billing/ds=2025-03-31/billing.csv") == b"id,x\n1,2\n"
    assert store.uri("billing/x.csv") == f"file://{(store.root / 'billing/x.csv').resolve()}"


def test_list_keys_by_folder_and_by_partial_name(store):
    for key in ["billing/ds=2025-03-30/a.csv", "billing/ds=2025-03-31/a.csv", "billing/ds=2025-03-31/b.csv"]:
        store.put_bytes(key, b"x")

    assert store.list_keys("billing/ds=2025-03-31/") == [
        "billing/ds=2025-03-31/a.csv",
        "billing/ds=2025-03-31/b.csv",
    ]
    assert store.list_keys("billing/ds=2025-03-3") == [
        "billing/ds=2025-03-30/a.csv",
        "billing/ds=2025-03-31/a.csv",
        "billing/ds=2025-03-31/b.csv",
    ]
    assert store.list_keys("billing/ds=2025-04-01/") == []
    assert store.list_keys("nothing/here/") == []


def test_list_keys_ignores_a_write_in_progress(store):
    store.put_bytes("billing/ds=2025-03-31/a.csv", b"x")
    (store.root / "billing/ds=2025-03-31/b.csv.tmp-0123abcd").write_bytes(b"half")

    assert store.list_keys("billing/ds=2025-03-31/") == ["billing/ds=2025-03-31/a.csv"]


@pytest.mark.parametrize("fails", ["copy", "rename"])
def test_a_failed_write_keeps_the_old_object_and_leaves_no_temp_file(store, tmp_path, monkeypatch, fails):
    store.put_bytes(KEY, b"old partition")
    source = tmp_path / "new.parquet"
    source.write_bytes(b"new partition, much longer than the old one")

    def copy_half_then_fail(src, dst):
        Path(dst).write_bytes(Path(src).read_bytes()[:5])
        raise OSError("disk full")

    def refuse(*args):
        raise OSError("rename refused")

    if fails == "copy":
        monkeypatch.setattr(stores.shutil, "copyfile", copy_half_then_fail)
    else:
        monkeypatch.setattr(stores.os, "replace", refuse)

    with pytest.raises(OSError, match=r"disk full|rename refused"):
        store.put_file(KEY, source)

    monkeypatch.undo()
    assert store.read_bytes(KEY) == b"old partition"
    assert files_under(store) == [KEY]


def test_partition_key_names_zone_use_case_and_day():
    assert partition_key("raw", "churn", dt.date(2025, 3, 31)) == KEY


def test_a_typed_frame_round_trips_through_the_lake(store):
    frame = pd.DataFrame(
        {
            "customerID": pd.Series(["0001-AAAAA", "0002-BBBBB", "0003-CCCCC"], dtype="str"),
            "tenure": pd.Series([1, None, 72], dtype="Int64"),
            "TotalCharges": pd.Series([29.85, float("nan"), 1889.5], dtype="float64"),
            "PaperlessBilling": pd.Series([True, None, False], dtype="boolean"),
            "signup": pd.Series(pd.to_datetime(["2024-01-01", None, "2024-12-31"])).astype("datetime64[us]"),
            "seen_at": pd.Series(pd.to_datetime(["2025-03-31T10:00Z", None, "2025-03-31T23:59Z"])).astype(
                "datetime64[us, UTC]"
            ),
            "ds": pd.Series([pd.Timestamp("2025-03-31")] * 3).astype("datetime64[us]"),
        }
    )

    write_frame(store, KEY, frame)
    back = read_frame(store, KEY)

    pd.testing.assert_frame_equal(back, frame)
    assert back.dtypes.astype(str).to_dict() == frame.dtypes.astype(str).to_dict()
    assert files_under(store) == [KEY]


def test_listing_everything_in_a_store(store, tmp_path):
    (tmp_path / "outside.txt").write_bytes(b"not in the store")
    assert store.list_keys("") == []

    store.put_bytes("b/x.csv", b"x")
    store.put_bytes("a.csv", b"x")

    assert store.list_keys("") == ["a.csv", "b/x.csv"]


@pytest.mark.parametrize("key", ["../outside.txt", "a/../../outside.txt", "/etc/passwd", "a\\..\\x", "a//b"])
def test_local_store_refuses_a_key_outside_its_root(store, key):
    (store.root.parent / "outside.txt").write_text("secret")
    store.root.mkdir(parents=True, exist_ok=True)

    for call in (store.read_bytes, store.delete, store.list_keys, lambda k: store.put_bytes(k, b"x")):
        with pytest.raises(ValueError, match=r"key|outside|absolute|backslash|segment"):
            call(key)
    assert (store.root.parent / "outside.txt").read_text() == "secret"


def test_local_store_does_not_follow_a_symlink_out_of_its_root(store, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "passwd.csv").write_text("root:x:0:0\n")
    (store.root / "billing").mkdir(parents=True)
    (store.root / "billing" / "link").symlink_to(outside)

    assert store.list_keys("billing/") == []
    with pytest.raises(ValueError, match="resolves outside the store's root"):
        store.read_bytes("billing/link/passwd.csv")


def test_s3_store_refuses_keys_s3_would_not_resolve():
    calls = []

    class Client:
        def get_object(self, **kwargs):
            calls.append(kwargs)
            return {"Body": __import__("io").BytesIO(b"x")}

    store = stores.S3Store(Client(), "lake", "tenant-a")
    assert store.read_bytes("raw/x") == b"x"
    assert calls == [{"Bucket": "lake", "Key": "tenant-a/raw/x"}]
    for key in ("../tenant-b/raw/x", "/raw/x", "raw/./x", "raw\\x"):
        with pytest.raises(ValueError):
            store.read_bytes(key)
    assert len(calls) == 1
