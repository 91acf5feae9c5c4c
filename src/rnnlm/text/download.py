"""Checksum-verified download from a list of mirrors, with an offline cache.

The cache works like d2l's own downloader: a verified file named after the URL in the
cache dir is used without touching the network, so the pipeline runs offline once the
data has been fetched (or placed there by hand).
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import logging
import os
import shutil
import ssl
import stat
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from tqdm import tqdm

from rnnlm import __version__
from rnnlm.errors import RnnlmError
from rnnlm.io import atomic_path

ALGORITHMS = ("sha1", "sha256")
DEFAULT_MAX_BYTES = 1 << 30  # params.yaml `data.max_bytes`: what one source file may weigh
_CHUNK = 1 << 16
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Manifest:
    """Where a verified file came from, for the stage's metadata output."""

    source: str  # the URL the file is (a cached copy named after it counts as it)
    algorithm: str
    checksum: str
    bytes: int
    # True when a verified copy in the cache was used and no network was touched. The cache's
    # path is left out on purpose: it differs between machines, the bytes do not.
    from_cache: bool = False

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


class _Failure(Exception):
    """One attempt on one URL failed; `retry` says whether trying the same URL again may help,
    `fix` what the user can change when it is not the mirror's fault (the source's size, kind)."""

    def __init__(self, reason: str, *, retry: bool, fix: str | None = None) -> None:
        super().__init__(reason)
        self.retry = retry
        self.fix = fix


def default_cache_dir() -> Path:
    """`$RNNLM_CACHE` if set, else `~/.cache/rnnlm`."""
    env = os.environ.get("RNNLM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rnnlm"


def _check_algorithm(algorithm: str) -> str:
    if algorithm not in ALGORITHMS:
        raise RnnlmError(
            f"unknown checksum algorithm {algorithm!r}: use one of {', '.join(ALGORITHMS)} "
            "(params.yaml `data`)"
        )
    return algorithm


def _normalise_checksum(checksum: str, algorithm: str) -> str:
    expected = checksum.strip().lower()
    width = hashlib.new(algorithm).digest_size * 2
    if len(expected) != width or any(c not in "0123456789abcdef" for c in expected):
        raise RnnlmError(
            f"checksum {checksum!r} is not a {algorithm} digest ({width} hex digits): "
            "fix it in params.yaml `data`"
        )
    return expected


def _local_path(url: str) -> Path | None:
    """The filesystem path for a `file://` URL or a plain path; None for http(s)."""
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme == "":
        return Path(url)
    raise _Failure(
        f"unsupported URL scheme {parsed.scheme!r} (use http, https, file or a path)", retry=False
    )


def _cache_name(url: str, dest: Path) -> str:
    """The cache file name for `url`: the last part of its path, else dest's name."""
    parsed = urlparse(url)
    name = PurePosixPath(unquote(parsed.path)).name if parsed.scheme else Path(url).name
    # A URL ending in "/" or ".." names no file; never let it point outside the cache dir.
    return name if name not in ("", ".", "..") else dest.name


_RAISE_MAX_BYTES = "raise data.max_bytes in params.yaml if the file really is that large"


def _too_large(size: str | None, max_bytes: int) -> _Failure:
    """`size`: what the source says it weighs ("its Content-Length (N bytes)"); None for a
    stream stopped at the bound."""
    bound = f"data.max_bytes ({max_bytes:,} bytes)"
    reason = (f"{size} is more than {bound}" if size is not None
              else f"it went on past {bound} and was stopped there")
    return _Failure(reason, retry=False, fix=_RAISE_MAX_BYTES)


def _copy_hashing(
    stream: BinaryIO, out: Path, algorithm: str, total: int | None, desc: str, progress: bool,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[str, int]:
    """Copy `stream` into `out`, hashing on the way; return (hex digest, byte count). Stops as
    soon as more than `max_bytes` arrived: a source that never ends costs at most that."""
    hasher = hashlib.new(algorithm)
    size = 0
    with (
        open(out, "wb") as f,
        tqdm(
            total=total,
            desc=desc,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            disable=not progress,
            leave=False,
        ) as bar,
    ):
        while True:
            try:
                chunk = stream.read(_CHUNK)
            except http.client.IncompleteRead as e:
                raise _Failure(_truncated(size + len(e.partial), total), retry=True) from e
            if not chunk:
                break
            if size + len(chunk) > max_bytes:
                raise _too_large(None, max_bytes)  # that chunk is neither hashed nor written
            hasher.update(chunk)
            f.write(chunk)
            size += len(chunk)
            bar.update(len(chunk))
    return hasher.hexdigest(), size


def _link_hashing(source: Path, out: Path, algorithm: str, desc: str, progress: bool,
                  max_bytes: int) -> tuple[str, int]:
    """Put `source` at `out` as a hard link where it can be (the same file system), else as a
    copy, and hash what landed there: a local corpus of a gigabyte costs no second gigabyte."""
    out.unlink(missing_ok=True)
    try:
        os.link(source, out)
    except OSError:  # another file system, or links refused: copy, hashing on the way
        with open(source, "rb") as src:
            return _copy_hashing(src, out, algorithm, None, desc, progress, max_bytes)
    with open(out, "rb") as linked:
        return _copy_hashing(linked, Path(os.devnull), algorithm, None, desc, progress,
                             max_bytes)


def _truncated(got: int, total: int | None) -> str:
    if total is None:
        return f"truncated: got {got} bytes before the connection closed"
    return f"truncated: got {got} of {total} bytes"


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Length", "")
    return int(value) if value.strip().isdigit() else None


def _attempt(
    url: str,
    dest: Path,
    *,
    algorithm: str,
    expected: str,
    timeout: float,
    progress: bool,
    max_bytes: int,
) -> int:
    """Fetch `url` once into `dest`, verified; return its size. Raises `_Failure`."""
    try:
        local = _local_path(url)
        if local is not None:
            _check_regular(local)  # before opening: a FIFO's open would wait for a writer
        with atomic_path(dest) as tmp:
            if local is not None:
                total: int | None = local.stat().st_size
                if total is not None and total > max_bytes:
                    raise _too_large(f"its size ({total:,} bytes)", max_bytes)
                digest, size = _link_hashing(local, tmp, algorithm, dest.name, progress,
                                             max_bytes)
            else:
                request = urllib.request.Request(
                    url, headers={"User-Agent": f"rnnlm/{__version__}"}
                )
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    total = _content_length(response)
                    if total is not None and total > max_bytes:  # before any byte is read
                        raise _too_large(f"its Content-Length ({total:,} bytes)", max_bytes)
                    digest, size = _copy_hashing(
                        response, tmp, algorithm, total, dest.name, progress, max_bytes
                    )
            # http.client returns b"" rather than raising when a Content-Length body stops short.
            if total is not None and size < total:
                raise _Failure(_truncated(size, total), retry=True)
            if digest != expected:
                # The body arrived whole, so asking again would give the same wrong bytes.
                raise _Failure(
                    f"checksum mismatch: expected {algorithm} {expected}, got {digest}",
                    retry=False,
                )
        return size
    except urllib.error.HTTPError as e:
        raise _Failure(f"HTTP {e.code} {e.reason}", retry=e.code >= 500) from e
    except urllib.error.URLError as e:
        raise _Failure(f"connection error: {e.reason}", retry=True) from e
    except (http.client.HTTPException, TimeoutError, ConnectionError, ssl.SSLError) as e:
        raise _Failure(f"connection error: {type(e).__name__}: {e}", retry=True) from e
    except OSError as e:  # a missing local file, an unwritable dest: retrying will not help
        raise _Failure(f"{type(e).__name__}: {e}", retry=False) from e


def _check_regular(path: Path) -> None:
    """A local source must be a regular file: a FIFO, a device (/dev/zero) or a directory would
    hang or never end."""
    mode = path.stat().st_mode  # follows symbolic links; a missing file raises OSError
    if not stat.S_ISREG(mode):
        kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket"
                if stat.S_ISSOCK(mode) else "not a regular file")
        raise _Failure(f"it is {kind}, not a regular file", retry=False,
                       fix="point the URL in params.yaml `data` at the corpus file itself")


def _from_url(
    url: str,
    dest: Path,
    *,
    algorithm: str,
    expected: str,
    retries: int,
    backoff: float,
    timeout: float,
    progress: bool,
    max_bytes: int,
) -> int:
    """Try `url` up to `retries` times with exponential backoff; raises the last `_Failure`."""
    attempt = 0
    while True:
        try:
            return _attempt(
                url,
                dest,
                algorithm=algorithm,
                expected=expected,
                timeout=timeout,
                progress=progress,
                max_bytes=max_bytes,
            )
        except _Failure as failure:
            attempt += 1
            if not failure.retry:
                raise
            if attempt >= retries:
                raise _Failure(f"{failure} (after {retries} attempts)", retry=False,
                               fix=failure.fix) from None
            delay = backoff * 2 ** (attempt - 1)
            _log.warning("%s: %s; retrying in %.2fs", url, failure, delay)
            time.sleep(delay)


def _from_cache(
    cached: Path, dest: Path, *, url: str, algorithm: str, expected: str, notes: list[str],
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Manifest | None:
    """Link (or copy) a verified cache file to `dest`; None (with a warning for a bad one)
    otherwise."""
    if not cached.is_file():  # follows links; a FIFO or a device is not a file
        return None
    try:
        # Verify what landed in dest, so that it is exactly what was checked.
        with atomic_path(dest) as tmp:
            digest, size = _link_hashing(cached, tmp, algorithm, dest.name, False, max_bytes)
            if digest != expected:
                raise _Failure(
                    f"checksum mismatch: expected {algorithm} {expected}, got {digest}",
                    retry=False,
                )
    except (_Failure, OSError) as e:
        note = f"cached {cached} ignored: {e}"
        notes.append(note)
        warnings.warn(f"{note}; delete it or fix params.yaml `data`", stacklevel=3)
        return None
    _log.info("%s: %s bytes from the cache %s, %s verified", dest.name, f"{size:,}", cached,
              algorithm)
    return Manifest(source=url, algorithm=algorithm, checksum=digest, bytes=size, from_cache=True)


def _fill_cache(dest: Path, cached: Path) -> None:
    """Keep a copy for offline runs; a cache that cannot be written is not fatal."""
    try:
        with atomic_path(cached) as tmp:
            shutil.copyfile(dest, tmp)
    except OSError as e:
        warnings.warn(f"could not write the download cache {cached}: {e}", stacklevel=3)


def fetch(
    urls: Sequence[str],
    dest: Path,
    *,
    algorithm: str,
    checksum: str,
    cache_dir: Path | None = None,
    retries: int = 3,
    backoff: float = 0.5,
    timeout: float = 30.0,
    progress: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Manifest:
    """Put the file with the given checksum at `dest`, from the cache or the first good mirror;
    a source over `max_bytes` is refused (by its size or Content-Length when known, else as
    soon as that many bytes arrived).

    On failure raises `RnnlmError` naming every URL tried and why, and leaves nothing at
    `dest` or beside it.
    """
    _check_algorithm(algorithm)
    expected = _normalise_checksum(checksum, algorithm)
    if isinstance(urls, str):  # a bare string is a Sequence[str] of characters
        urls = [urls]
    if not urls:
        raise RnnlmError("no download URL given: list at least one under params.yaml `data`")
    if retries < 1:
        raise RnnlmError(f"retries must be at least 1, got {retries}")
    dest = Path(dest)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    notes: list[str] = []
    fixes: list[str | None] = []  # each note's own fix; None: the generic one below
    first_url_by_name: dict[str, str] = {}
    for url in urls:
        first_url_by_name.setdefault(_cache_name(url, dest), url)
    for name, url in first_url_by_name.items():
        manifest = _from_cache(
            cache / name, dest, url=url, algorithm=algorithm, expected=expected, notes=notes,
            max_bytes=max_bytes,
        )
        if manifest is not None:
            return manifest
    fixes += [None] * len(notes)

    for url in urls:
        try:
            size = _from_url(
                url,
                dest,
                algorithm=algorithm,
                expected=expected,
                retries=retries,
                backoff=backoff,
                timeout=timeout,
                progress=progress,
                max_bytes=max_bytes,
            )
        except _Failure as failure:
            notes.append(f"{url}: {failure}")
            fixes.append(failure.fix)
            continue
        if _local_path(url) is None:  # a local source is its own offline copy
            _fill_cache(dest, cache / _cache_name(url, dest))
        return Manifest(source=url, algorithm=algorithm, checksum=expected, bytes=size)

    generic = ("check the URLs and checksum under `data` in params.yaml, or put a verified copy "
               f"named {_cache_name(urls[0], dest)} in the cache dir {cache} "
               "(set $RNNLM_CACHE to choose another)")
    fix = "; or ".join(dict.fromkeys(f if f is not None else generic for f in fixes))
    wanted = f"{dest.name} ({algorithm} {expected})"
    if len(notes) == 1:  # one URL and no cached copy: one line
        raise RnnlmError(f"could not get {wanted} from {notes[0]}. Fix: {fix}.")
    tried = "\n".join(f"  - {note}" for note in notes)
    raise RnnlmError(f"could not get {wanted}; every source failed:\n{tried}\nFix: {fix}.")


@dataclass(frozen=True)
class Source:
    """One file to fetch: its mirrors and checksum."""

    urls: Sequence[str]
    algorithm: str
    checksum: str


def fetch_documents(sources: Sequence[Source], dest: Path, *, cache_dir: Path | None = None,
                    progress: bool = True, max_bytes: int = DEFAULT_MAX_BYTES
                    ) -> dict[str, object]:
    """Fetch several files (each as `fetch` does, each at most `max_bytes`) and write them one
    after another to `dest`.

    Returns the manifest: each document's own (source, checksum, bytes...) and its `offset` in
    `dest`, so that the documents can be told apart again.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    documents: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}.", dir=dest.parent) as tmp:
        parts = [Path(tmp) / f"document-{i + 1}-{dest.name}" for i in range(len(sources))]
        manifests = [fetch(source.urls, part, algorithm=source.algorithm,
                           checksum=source.checksum, cache_dir=cache_dir, progress=progress,
                           max_bytes=max_bytes)
                     for source, part in zip(sources, parts, strict=True)]
        with atomic_path(dest) as out, out.open("wb") as f:
            for manifest, part in zip(manifests, parts, strict=True):
                documents.append({**manifest.to_dict(), "offset": f.tell()})
                with part.open("rb") as src:
                    shutil.copyfileobj(src, f, _CHUNK * 16)
            total = f.tell()
    return {"documents": documents, "bytes": total}
