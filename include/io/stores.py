"""Object stores: a local folder or an S3 bucket behind one small interface.

The lake and the file sources both live in a store. Keys are `/`-separated paths relative to the
store's root. Writes are all-or-nothing: a reader sees the old object or the new one, never a part.
`open` gives a seekable file that reads only the byte ranges asked for (ranged GETs on S3), so a
Parquet reader fetches its footer and the row groups it reads, not the whole object.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

log = logging.getLogger(__name__)

# The smallest ranged GET: a Parquet footer's few small reads share one request.
_RANGE_BYTES = 1 << 20
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def check_key(key: str, name: str = "key", shown: str | None = None) -> str:
    """`key` if it names an object (or a prefix, ending in `/`) inside its store's root.

    A key is relative and `/`-separated: no leading `/` or `~`, no drive or URL scheme, no empty, `.`
    or `..` segment, no backslash and no control character.

    Args:
        key: the key or prefix.
        name: what the key is, for the error (a spec's `prefix`).
        shown: the value to quote in the error, when `key` was derived from it.

    Raises:
        ValueError: naming `name`, the value and what is wrong with it.
    """
    problem = None
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        problem = "holds a control character"
    elif "\\" in key:
        problem = "holds a backslash (keys are /-separated)"
    elif key.startswith(("/", "~")):
        problem = "is absolute (keys are relative to the store's root)"
    elif _SCHEME.match(key):
        problem = "names a drive or URL scheme (keys are relative to the store's root)"
    elif key:
        segments = key.split("/")
        inner = segments[:-1] if key.endswith("/") else segments
        if any(s in ("", ".", "..") for s in inner):
            problem = "has an empty, `.` or `..` segment (it must stay inside the store's root)"
    if problem:
        raise ValueError(f"{name}: {shown if shown is not None else key!r} {problem}")
    return key


class ObjectStore(Protocol):
    """What the platform needs from a bucket or a folder."""

    def uri(self, key: str = "") -> str: ...

    def key_of(self, uri: str) -> str: ...

    def list_keys(self, prefix: str) -> list[str]: ...

    def read_bytes(self, key: str) -> bytes: ...

    def local_path(self, key: str) -> contextlib.AbstractContextManager[Path]:
        """A local file holding the object, for readers that stream from a file."""
        ...

    def open(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """The object as a seekable binary file that reads only the byte ranges asked for."""
        ...

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def put_file(self, key: str, path: Path) -> None: ...

    def delete(self, key: str) -> None: ...


class LocalStore:
    """A folder standing in for a bucket (the embedded default)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        """The file of `key`, refused when it lies outside the root (a `..`, or a symlink out)."""
        path = self.root / check_key(key)
        root = self.root.resolve()
        if not path.resolve().is_relative_to(root):
            raise ValueError(f"key {key!r} resolves outside the store's root {root}")
        return path

    def uri(self, key: str = "") -> str:
        return f"file://{self.root.resolve() / key}"

    def key_of(self, uri: str) -> str:
        """The key of a URI made by `uri` (the inverse)."""
        return _key_under(uri, self.uri() + "/")

    def list_keys(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        # An empty prefix means the whole store: never fall back to the folder above the root.
        folder = base if not prefix or prefix.endswith("/") or base.is_dir() else base.parent
        if not folder.is_dir():
            return []
        root = self.root.resolve()
        # A symlink under the root may point anywhere: list only what resolves inside it.
        keys = (
            p.relative_to(self.root).as_posix()
            for p in folder.rglob("*")
            if p.is_file() and p.resolve().is_relative_to(root)
        )
        return sorted(k for k in keys if k.startswith(prefix) and ".tmp-" not in k)

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(f"{self.uri(key)} does not exist")
        yield path

    @contextlib.contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        with self.local_path(key) as path, path.open("rb") as file:
            yield file

    def put_bytes(self, key: str, data: bytes) -> None:
        self._replace(key, lambda tmp: tmp.write_bytes(data))

    def put_file(self, key: str, path: Path) -> None:
        self._replace(key, lambda tmp: shutil.copyfile(path, tmp))

    def _replace(self, key: str, write) -> None:
        # Write beside the target, then rename: os.replace is atomic within one file system.
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.tmp-{uuid.uuid4().hex}")
        try:
            write(tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3Store:
    """A bucket (and optional key prefix) reached through a boto3 S3 client."""

    def __init__(self, client, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def _key(self, key: str) -> str:
        """The object key of `key` under the store's prefix; S3 does not resolve `..`, so refuse it."""
        return self.prefix + check_key(key)

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def key_of(self, uri: str) -> str:
        """The key of a URI made by `uri` (the inverse)."""
        return _key_under(uri, self.uri())

    def list_keys(self, prefix: str) -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        keys = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            keys += [obj["Key"][len(self.prefix) :] for obj in page.get("Contents", [])]
        return sorted(keys)

    def read_bytes(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        """The object downloaded (in parts, never whole in memory) to a temporary file."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(key).name
            self.client.download_file(self.bucket, self._key(key), str(path))
            yield path

    @contextlib.contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        """The object read by ranged GETs: a Parquet reader fetches its footer and the row groups it
        reads, never the whole object."""
        size = self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"]
        raw = _S3Range(self.client, self.bucket, self._key(key), size)
        with io.BufferedReader(raw, _RANGE_BYTES) as file:
            yield file

    # S3 makes an object visible only once its upload (single or multipart) completes, so a PUT to
    # the final key is already all-or-nothing: a temporary key and a copy would add nothing.
    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def put_file(self, key: str, path: Path) -> None:
        self.client.upload_file(str(path), self.bucket, self._key(key))

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))


class _S3Range(io.RawIOBase):
    """One S3 object as a seekable raw file: each read is one ranged GET."""

    def __init__(self, client, bucket: str, key: str, size: int) -> None:
        self.client, self.bucket, self.key, self.size, self.position = client, bucket, key, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(base + offset, 0)
        return self.position

    def readinto(self, buffer) -> int:
        end = min(self.position + len(buffer), self.size)
        if end <= self.position:
            return 0
        byte_range = f"bytes={self.position}-{end - 1}"
        data = self.client.get_object(Bucket=self.bucket, Key=self.key, Range=byte_range)["Body"].read()
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)


def _key_under(uri: str, base: str) -> str:
    if not uri.startswith(base):
        raise ValueError(f"{uri} is not in the store at {base}")
    return uri[len(base) :]
