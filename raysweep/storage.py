"""Where results live: a local directory or an ``s3://`` URI, behind one small API.

Writes are atomic: a local file is written to a temporary name and renamed into place; an S3
object becomes visible only when its upload completes. A reader therefore sees a whole file or
none, whatever happens to the writer.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from functools import lru_cache
from pathlib import Path

import fsspec

from raysweep.config.errors import ConfigError


def is_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


def join(uri: str, *parts: str) -> str:
    base = str(uri).rstrip("/")
    return "/".join([base, *(p.strip("/") for p in parts)])


@lru_cache(maxsize=8)
def _s3(endpoint: str | None, environment: tuple = ()) -> fsspec.AbstractFileSystem:
    """The one S3 client: short timeouts and few retries, so that an unreachable endpoint or a bad
    bucket is reported in seconds, not minutes."""
    import s3fs

    fs = s3fs.S3FileSystem(
        endpoint_url=endpoint,
        skip_instance_cache=True,
        config_kwargs={"connect_timeout": 5, "read_timeout": 30, "retries": {"max_attempts": 3, "mode": "standard"}},
    )
    fs.retries = 2  # s3fs's own retry loop (its default is 5, with back-off)
    return fs


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem of ``uri`` and the path within it."""
    if is_s3(uri):
        # one client per endpoint and AWS environment (credentials set or changed later get a new one)
        aws = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
        return _s3(os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"), aws), str(uri)[len("s3://") :]
    return fsspec.filesystem("file"), str(Path(str(uri).removeprefix("file://")).expanduser().absolute())


def atomic_write(uri: str, data: bytes) -> None:
    fs, path = filesystem(uri)
    if is_s3(uri):
        with fs.open(path, "wb") as f:  # one PUT (or a multipart upload completed on close)
            f.write(data)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    with fs.open(path, "rb") as f:
        return f.read()


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    if is_s3(uri):
        fs.invalidate_cache(path)
    return fs.exists(path)


def listdir(uri: str) -> list[str]:
    """Names (not paths) of the entries of a directory; empty if it does not exist."""
    fs, path = filesystem(uri)
    if is_s3(uri):
        fs.invalidate_cache(path)
    try:
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False))
    except FileNotFoundError:
        return []


def remove(uri: str) -> None:
    fs, path = filesystem(uri)
    try:
        fs.rm(path)
    except FileNotFoundError:
        pass


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_writable(uri: str, key: str | None = None) -> None:
    """Fail fast, in one line, when ``uri`` cannot be written (missing bucket, bad credentials,
    unreachable endpoint, read-only directory). Creates nothing: a local directory that does not
    exist yet is checked through its nearest existing parent; on S3 a probe object is written and
    deleted. ``key`` names the option in the message (``out='...'``); the default says ``storage``."""
    what = f"{key}={uri!r}" if key else f"storage {uri!r}"
    if not is_s3(uri):
        path = Path(filesystem(uri)[1])
        existing = next(p for p in (path, *path.parents) if p.exists())
        if not existing.is_dir():
            raise ConfigError(f"{what} is not writable: {existing} is a file, not a directory")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(f"{what} is not writable: permission denied on {existing}")
        return
    probe = join(uri, f".raysweep-probe-{uuid.uuid4().hex}")
    try:
        atomic_write(probe, b"ok")
        remove(probe)
    except Exception as e:  # noqa: BLE001 - any failure here means: cannot use this storage
        raise ConfigError(f"{what} is not writable: {_reason(e)}") from None


def _reason(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    for marker, reason in (
        ("NoSuchBucket", "the bucket does not exist"),
        ("specified bucket does not exist", "the bucket does not exist"),
        ("InvalidAccessKeyId", "bad credentials (invalid access key)"),
        ("SignatureDoesNotMatch", "bad credentials (signature does not match)"),
        ("AccessDenied", "access denied"),
        ("Could not connect", "the endpoint is unreachable"),
        ("Connect timeout", "the endpoint is unreachable (timeout)"),
        ("Unable to locate credentials", "no credentials found"),
    ):
        if marker in text:
            return reason
    if isinstance(e, PermissionError):
        return "permission denied"
    return f"{type(e).__name__}: {text[:200]}"


# ------------------------------------------------------------------------------------------ http(s)

HTTP_TIMEOUT_S = 60.0


class DownloadError(Exception):
    """A download that failed; its message is the reason in a few words (for a one-line error)."""


def download(url: str, write, max_bytes: int | None = None, timeout: float = HTTP_TIMEOUT_S) -> int:
    """Stream ``url`` (http or https) into ``write(chunk)``; return the bytes written. Raises
    :class:`DownloadError` naming why it failed (HTTP status, unreachable, timeout, too large)."""
    import urllib.error
    import urllib.request

    from raysweep.config.errors import brief

    total = 0
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "raysweep/0.1 (python-urllib)"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                total += len(chunk)
                if max_bytes is not None and total > max_bytes:
                    raise DownloadError(f"larger than {max_bytes // 2**20} MiB")
                write(chunk)
    except DownloadError:
        raise
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"HTTP error {exc.code} {brief(exc.reason or '', 80)}".rstrip()) from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise DownloadError(f"unreachable: no answer within {timeout:g} s") from None
        raise DownloadError(f"unreachable ({brief(exc.reason) if isinstance(exc.reason, BaseException) else exc.reason})") from None
    except TimeoutError:
        raise DownloadError(f"unreachable: no answer within {timeout:g} s") from None
    except ValueError as exc:
        raise DownloadError(f"not a valid URL ({brief(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - http.client errors, connection resets, a full disk
        raise DownloadError(f"{type(exc).__name__}: {brief(exc)}") from None
    return total
