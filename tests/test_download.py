"""rnnlm.download against a real local HTTP server (no mocks)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType

import pytest
from helpers.project import committed_params

from pipeline import _stage
from pipeline._stage import run_stage
from pipeline.download import download
from rnnlm import layout
from rnnlm.checksums import file_digest
from rnnlm.errors import RnnlmError
from rnnlm.settings import parse_params
from rnnlm.text.download import Manifest, default_cache_dir, fetch

CORPUS = ("The Time Machine, by H. G. Wells [1898]\n" * 100).encode()
SHA1 = hashlib.sha1(CORPUS).hexdigest()
SHA256 = hashlib.sha256(CORPUS).hexdigest()
NAME = "timemachine.txt"
PATH = f"/data/{NAME}"


@dataclass
class Reply:
    status: int = 200
    body: bytes = CORPUS
    content_length: int | None = None  # None: the true length; larger: a truncated body
    delay: float = 0.0
    endless: bool = False  # no Content-Length, and the body never ends


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler stuck in `delay` must not block shutdown

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.routes: dict[str, list[Reply]] = {}
        self.counts: Counter[str] = Counter()
        self._thread = threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        self._stopped = False

    def url(self, path: str = PATH) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}{path}"

    def program(self, path: str, *replies: Reply) -> None:
        """Serve `replies` in order on `path`; the last one repeats."""
        with self.lock:
            self.routes[path] = list(replies)

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.shutdown()
            self.server_close()
            self._thread.join()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.counts[self.path] += 1
            replies = self.server.routes.get(self.path, [Reply(404, b"not found")])
            reply = replies.pop(0) if len(replies) > 1 else replies[0]
        time.sleep(reply.delay)
        if reply.endless:
            self._endless()
            return
        length = len(reply.body) if reply.content_length is None else reply.content_length
        try:
            self.send_response(reply.status)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:  # the client gave up (timeout test); nothing to report
            pass
        self.close_connection = True

    def _endless(self) -> None:
        try:
            self.send_response(200)
            self.end_headers()
            while True:
                self.wfile.write(b"\0" * 65536)
        except OSError:  # the client stopped reading
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep pytest output clean


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "out" / NAME


def _fetch(urls: list[str], dest: Path, cache: Path, **kwargs: object) -> Manifest:
    options: dict[str, object] = {"algorithm": "sha1", "checksum": SHA1, "backoff": 0.01}
    options.update(kwargs)
    return fetch(urls, dest, cache_dir=cache, progress=False, **options)  # type: ignore[arg-type]


def _assert_nothing_left(dest: Path) -> None:
    left = sorted(p.name for p in dest.parent.iterdir()) if dest.parent.exists() else []
    assert left == []


def test_success_writes_file_manifest_and_cache(server: _Server, dest: Path, cache: Path) -> None:
    server.program(PATH, Reply())
    manifest = fetch(
        [server.url()], dest, algorithm="sha256", checksum=SHA256.upper(), cache_dir=cache
    )
    assert dest.read_bytes() == CORPUS
    assert manifest == Manifest(server.url(), "sha256", SHA256, len(CORPUS))
    assert manifest.to_dict() == {
        "source": server.url(),
        "algorithm": "sha256",
        "checksum": SHA256,
        "bytes": len(CORPUS),
        "from_cache": False,
    }
    assert (cache / NAME).read_bytes() == CORPUS
    assert sorted(p.name for p in dest.parent.iterdir()) == [NAME]  # no temp files


def test_5xx_is_retried(server: _Server, dest: Path, cache: Path) -> None:
    server.program(PATH, Reply(500, b"oops"), Reply())
    manifest = _fetch([server.url()], dest, cache)
    assert manifest.source == server.url()
    assert dest.read_bytes() == CORPUS
    assert server.counts[PATH] == 2


def test_persistent_5xx_gives_up_after_retries(server: _Server, dest: Path, cache: Path) -> None:
    server.program(PATH, Reply(503, b"busy"))
    with pytest.raises(RnnlmError, match="HTTP 503") as err:
        _fetch([server.url()], dest, cache, retries=3)
    assert server.counts[PATH] == 3
    assert "after 3 attempts" in str(err.value)
    _assert_nothing_left(dest)


def test_404_is_not_retried(server: _Server, dest: Path, cache: Path) -> None:
    with pytest.raises(RnnlmError) as err:
        _fetch([server.url()], dest, cache, backoff=5.0)
    assert server.counts[PATH] == 1  # asked once: no retry
    message = str(err.value)
    assert server.url() in message and "404" in message
    assert "params.yaml" in message and "RNNLM_CACHE" in message
    _assert_nothing_left(dest)


def test_truncated_body(server: _Server, dest: Path, cache: Path) -> None:
    server.program(PATH, Reply(body=CORPUS[:1000], content_length=len(CORPUS)))
    with pytest.raises(RnnlmError) as err:
        _fetch([server.url()], dest, cache, retries=2)
    message = str(err.value)
    assert server.url() in message
    assert f"truncated: got 1000 of {len(CORPUS)} bytes" in message
    assert server.counts[PATH] == 2  # truncation is retried
    _assert_nothing_left(dest)


def test_truncated_then_whole_body(server: _Server, dest: Path, cache: Path) -> None:
    server.program(PATH, Reply(body=CORPUS[:10], content_length=len(CORPUS)), Reply())
    assert _fetch([server.url()], dest, cache).bytes == len(CORPUS)
    assert server.counts[PATH] == 2


def test_timeout_is_retried(server: _Server, dest: Path, cache: Path) -> None:
    server.program(PATH, Reply(delay=1.0), Reply())
    _fetch([server.url()], dest, cache, timeout=0.2)
    assert dest.read_bytes() == CORPUS
    assert server.counts[PATH] == 2


def test_checksum_mismatch(server: _Server, dest: Path, cache: Path) -> None:
    bad = CORPUS.replace(b"Wells", b"Welles")
    server.program(PATH, Reply(body=bad))
    with pytest.raises(RnnlmError) as err:
        _fetch([server.url()], dest, cache)
    message = str(err.value)
    assert server.url() in message
    assert f"expected sha1 {SHA1}" in message
    assert f"got {hashlib.sha1(bad).hexdigest()}" in message
    assert server.counts[PATH] == 1  # a whole body with the wrong bytes is not retried
    _assert_nothing_left(dest)
    assert not (cache / NAME).exists()


def test_cache_hit_needs_no_network(server: _Server, dest: Path, cache: Path) -> None:
    cache.mkdir()
    (cache / NAME).write_bytes(CORPUS)
    url = server.url()
    server.stop()
    manifest = _fetch([url], dest, cache)
    assert manifest == Manifest(url, "sha1", SHA1, len(CORPUS), from_cache=True)
    assert dest.read_bytes() == CORPUS
    assert server.counts[PATH] == 0


def test_bad_cache_file_is_ignored_with_warning(server: _Server, dest: Path, cache: Path) -> None:
    cache.mkdir()
    (cache / NAME).write_bytes(b"stale")
    server.program(PATH, Reply())
    with pytest.warns(UserWarning, match=NAME) as record:
        manifest = _fetch([server.url()], dest, cache)
    warning = str(record[0].message)
    assert SHA1 in warning and hashlib.sha1(b"stale").hexdigest() in warning
    assert manifest.source == server.url()
    assert server.counts[PATH] == 1
    assert dest.read_bytes() == CORPUS
    assert (cache / NAME).read_bytes() == CORPUS  # the good copy replaces the bad one


def test_mirrors_are_tried_in_order(server: _Server, dest: Path, cache: Path) -> None:
    missing, good = "/gone/" + NAME, "/mirror/" + NAME
    server.program(good, Reply())
    manifest = _fetch([server.url(missing), server.url(good)], dest, cache)
    assert manifest.source == server.url(good)
    assert server.counts == Counter({missing: 1, good: 1})
    assert dest.read_bytes() == CORPUS


def test_every_mirror_named_in_error(server: _Server, dest: Path, cache: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/{NAME}"
    urls = [server.url("/a/" + NAME), closed]
    with pytest.raises(RnnlmError) as err:
        _fetch(urls, dest, cache, retries=2)
    message = str(err.value)
    assert f"{urls[0]}: HTTP 404" in message
    assert f"{urls[1]}: connection error" in message
    _assert_nothing_left(dest)


def test_cache_dir_not_writable_only_warns(server: _Server, dest: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    server.program(PATH, Reply())
    with pytest.warns(UserWarning, match="cache"):
        manifest = _fetch([server.url()], dest, blocker / "cache")
    assert manifest.bytes == len(CORPUS)
    assert dest.read_bytes() == CORPUS


def test_file_url_and_plain_path(tmp_path: Path, cache: Path) -> None:
    src = tmp_path / "src" / NAME
    src.parent.mkdir()
    src.write_bytes(CORPUS)
    by_url = _fetch([src.as_uri()], tmp_path / "a" / NAME, cache / "a")
    by_path = _fetch([str(src)], tmp_path / "b" / NAME, cache / "b")
    assert by_url.source == src.as_uri() and by_path.source == str(src)
    assert (tmp_path / "a" / NAME).read_bytes() == (tmp_path / "b" / NAME).read_bytes() == CORPUS
    assert file_digest(src, "sha1") == SHA1 and file_digest(src, "sha256") == SHA256


def test_missing_local_file(tmp_path: Path, dest: Path, cache: Path) -> None:
    missing = tmp_path / "nowhere" / NAME
    with pytest.raises(RnnlmError, match="FileNotFoundError") as err:
        _fetch([str(missing)], dest, cache)
    assert str(missing) in str(err.value)
    _assert_nothing_left(dest)


@pytest.mark.parametrize(
    ("algorithm", "checksum"), [("md5", SHA1), ("sha1", SHA256), ("sha1", "z" * 40)]
)
def test_bad_algorithm_or_checksum(
    tmp_path: Path, dest: Path, cache: Path, algorithm: str, checksum: str
) -> None:
    src = tmp_path / NAME
    src.write_bytes(CORPUS)
    with pytest.raises(RnnlmError, match=r"params\.yaml"):
        _fetch([str(src)], dest, cache, algorithm=algorithm, checksum=checksum)
    _assert_nothing_left(dest)


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RNNLM_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("RNNLM_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "rnnlm"


# --- sources that would cost unbounded resources -------------------------------------------
# Each of these would hang or fill the disk if its guard were missing: a deadline makes such a
# regression a failed test, not a stuck one.

LIMIT = 1 << 20
QUICK = 5.0  # seconds; each refusal takes milliseconds here
REFUSED_BY_SIZE = "Fix: raise data.max_bytes in params.yaml if the file really is that large."
NOT_REGULAR = "not a regular file. Fix: point the URL in params.yaml `data` at the corpus file"


class _Hung(BaseException):
    """Raised by `_deadline`; a BaseException so that no `except Exception` swallows it."""


@contextlib.contextmanager
def _deadline(seconds: float = 30.0) -> Iterator[None]:
    """Fail, rather than hang, when the block runs longer than `seconds`: SIGALRM interrupts a
    blocking open() of a FIFO or a read from a socket as well as a busy loop."""
    def expire(signum: int, frame: FrameType | None) -> None:
        raise _Hung(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _refused_quickly(urls: list[str], dest: Path, cache: Path) -> str:
    """The one-line error of a fetch capped at LIMIT; nothing left in dest's folder or the
    cache, and the refusal took less than QUICK seconds."""
    started = time.perf_counter()
    with _deadline(), pytest.raises(RnnlmError) as err:
        _fetch(urls, dest, cache, max_bytes=LIMIT)
    assert time.perf_counter() - started < QUICK
    _assert_nothing_left(dest)
    assert not cache.exists() or not any(cache.iterdir())
    message = str(err.value)
    assert "\n" not in message
    return message


def test_a_mirror_that_never_ends_is_stopped_at_max_bytes(server: _Server, dest: Path,
                                                          cache: Path) -> None:
    server.program(PATH, Reply(endless=True))
    message = _refused_quickly([server.url()], dest, cache)
    assert message.startswith(f"could not get {NAME} (sha1 {SHA1}) from {server.url()}: it went "
                              "on past data.max_bytes (1,048,576 bytes) and was stopped there.")
    assert message.endswith(REFUSED_BY_SIZE)
    assert server.counts[PATH] == 1  # not retried: the same mirror would send the same


def test_a_content_length_over_max_bytes_is_refused_before_the_transfer(
        server: _Server, dest: Path, cache: Path) -> None:
    server.program(PATH, Reply(body=b"", content_length=10 * LIMIT))  # headers only
    message = _refused_quickly([server.url()], dest, cache)
    assert (f"{server.url()}: its Content-Length (10,485,760 bytes) is more than data.max_bytes "
            "(1,048,576 bytes).") in message
    assert message.endswith(REFUSED_BY_SIZE)
    assert server.counts[PATH] == 1


def test_a_local_file_over_max_bytes_is_refused(tmp_path: Path, dest: Path, cache: Path) -> None:
    big = tmp_path / NAME
    big.write_bytes(b"x" * (LIMIT + 1))
    message = _refused_quickly([str(big)], dest, cache)
    assert "its size (1,048,577 bytes) is more than data.max_bytes (1,048,576 bytes)" in message
    assert message.endswith(REFUSED_BY_SIZE)


def test_a_file_of_exactly_max_bytes_is_accepted(tmp_path: Path, dest: Path, cache: Path) -> None:
    src = tmp_path / NAME
    src.write_bytes(CORPUS)
    assert _fetch([str(src)], dest, cache, max_bytes=len(CORPUS)).bytes == len(CORPUS)


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_a_local_source_that_is_not_a_regular_file_is_refused_before_opening(
        tmp_path: Path, dest: Path, cache: Path, kind: str) -> None:
    source = {"fifo": tmp_path / "pipe", "device": Path("/dev/zero"),
              "directory": tmp_path / "folder"}[kind]
    if kind == "fifo":
        os.mkfifo(source)  # opening it for reading would wait for a writer forever
    elif kind == "directory":
        source.mkdir()
    message = _refused_quickly([str(source)], dest, cache)
    expected = {"fifo": "a FIFO", "device": "a device", "directory": "a directory"}[kind]
    assert f"from {source}: it is {expected}, {NOT_REGULAR}" in message


def test_a_refused_mirror_gives_way_to_the_next(server: _Server, dest: Path,
                                                cache: Path) -> None:
    server.program("/endless/" + NAME, Reply(endless=True))
    server.program(PATH, Reply())
    with _deadline():
        manifest = _fetch(["/dev/zero", server.url("/endless/" + NAME), server.url()], dest,
                          cache, max_bytes=LIMIT)
    assert manifest.source == server.url() and dest.read_bytes() == CORPUS


def test_the_download_stage_refuses_in_one_line_with_exit_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RNNLM_CACHE", str(tmp_path / "cache"))
    raw = committed_params()
    raw["data"]["urls"] = ["/dev/zero"]
    monkeypatch.setattr(_stage, "load_params", lambda: parse_params(raw))
    with _deadline(), pytest.raises(SystemExit) as stopped:
        run_stage("download", download)
    assert stopped.value.code == 2
    sha1 = raw["data"]["sha1"]
    assert capsys.readouterr().err.splitlines() == [
        f"error in stage download: could not get {layout.RAW_TEXT.name} (sha1 {sha1}) from "
        f"/dev/zero: it is a device, {NOT_REGULAR} itself."]
    assert not (tmp_path / "data").exists() and not (tmp_path / "cache").exists()


def test_every_document_is_bounded_by_max_bytes(server: _Server, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RNNLM_CACHE", str(tmp_path / "cache"))
    first = tmp_path / "first.txt"
    first.write_bytes(CORPUS)
    server.program(PATH, Reply(endless=True))
    raw = committed_params()
    raw["data"] = {**raw["data"], "urls": [str(first)], "sha1": SHA1, "max_bytes": LIMIT,
                   "documents": [{"urls": [server.url()], "sha1": SHA1}]}
    with _deadline(), pytest.raises(RnnlmError, match=r"went on past data\.max_bytes"):
        download(parse_params(raw))
    assert list(layout.RAW_TEXT.parent.iterdir()) == []  # no corpus, no part, no manifest


def test_a_local_source_is_linked_not_copied_and_not_cached(tmp_path: Path, dest: Path,
                                                            cache: Path) -> None:
    source = tmp_path / "corpus-source.txt"
    source.write_bytes(CORPUS)
    manifest = _fetch([str(source)], dest, cache)
    assert manifest == Manifest(str(source), "sha1", SHA1, len(CORPUS))
    assert dest.stat().st_ino == source.stat().st_ino  # one file on disk, not two
    assert not cache.exists() or not any(cache.iterdir())  # it is its own offline copy


def test_a_cache_hit_is_linked_and_verified(server: _Server, dest: Path, cache: Path) -> None:
    cache.mkdir()
    (cache / NAME).write_bytes(CORPUS)
    _fetch([server.url()], dest, cache)
    assert dest.stat().st_ino == (cache / NAME).stat().st_ino  # a bad one: the test above
