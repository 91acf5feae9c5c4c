"""A damaged SQLite store (a truncated copy, a full disk during a write) named as such, with what
to do, instead of SQLAlchemy's traceback from deep inside MLflow."""

from __future__ import annotations

import shlex
import sqlite3
from pathlib import Path

from rnnlm.errors import RnnlmError

SQLITE = "sqlite:///"
# What SQLite says of a damaged file ("database is locked" is a kind of DatabaseError too, but
# moving a locked store aside would lose it).
DAMAGE_SIGNS = ("database disk image is malformed", "file is not a database")


def damaged(uri: str, why: str) -> RnnlmError:
    path = shlex.quote(uri.removeprefix(SQLITE))
    return RnnlmError(
        f"the MLflow store {uri!r} is damaged ({why}). Fix: move it aside (`mv {path} "
        f"{path}.damaged`), then run `rnnlm sync` (`make repro` runs it), "
        "which records the workspace's models and registry versions again from the repository "
        "(other runs stay readable only in the moved file, as far as SQLite can still read it)")


def check_sqlite_store(uri: str) -> None:
    """Raise a RnnlmError if `uri` is a SQLite store whose file is not a sound database; a
    missing or empty file is fine (MLflow creates the schema). SQLite's quick check reads every
    page once: milliseconds for a store of a few MB."""
    if not uri.startswith(SQLITE):
        return
    path = Path(uri.removeprefix(SQLITE))
    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as db:
            result = db.execute("PRAGMA quick_check(1)").fetchone()
    except sqlite3.DatabaseError as exc:
        if not any(sign in str(exc) for sign in DAMAGE_SIGNS):
            return  # locked, unreadable: MLflow's own error says so, no file should be moved
        raise damaged(uri, str(exc)) from None
    if result is None or result[0] != "ok":
        raise damaged(uri, f"SQLite's quick check: {result[0] if result else 'no answer'}")
