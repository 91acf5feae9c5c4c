"""Build `steps.cpp` into a shared library once per machine and load it through ctypes.

The library is compiled by the C++ compiler on PATH (`$CXX`, else `g++`, else `c++`) into a
per-user cache (`$RNNLM_NATIVE_CACHE`, else `$XDG_CACHE_HOME/rnnlm/native`, else
`~/.cache/rnnlm/native`) under a name that hashes the source, the flags (which follow the
processor: AVX2 or not) and the compiler's version, so a changed source, compiler or processor
class builds afresh. It builds
in about a second; `make` builds it during the install step (`python -m
rnnlm.neural.native.library`). Where it cannot be built or loaded, `kernels()` returns None with
the reason in `unavailable_reason()`, and training uses the recurrences written in PyTorch
operations (`rnnlm.neural.bptt`): same results to rounding, slower. `RNNLM_NATIVE=0` asks for that
path on purpose.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SOURCE = Path(__file__).with_name("steps.cpp")
# -fopenmp-simd honours the source's `declare simd` for glibc's vector exp; -fno-math-errno lets
# gcc call it (errno is never read).
FLAGS = ("-O3", "-fopenmp-simd", "-fno-math-errno", "-shared", "-fPIC")
# The vector code is AVX2 with FMA on every x86-64 CPU that has them, AVX-512 ones included: the
# same instructions, so the same digits, as the AVX2 paths `pipeline` pins PyTorch and MKL to
# (docs/reproducibility.md). Elsewhere gcc's default target.
AVX2 = ("-march=x86-64-v3",)
FUNCTIONS = {  # name -> number of pointer arguments, then int64 sizes
    "tanh_forward": (2, 1), "tanh_backward": (4, 1),
    "gru_forward": (8, 2), "gru_backward": (9, 2),
}


@dataclass(frozen=True)
class Kernels:
    """The entry points of one dtype: `tanh_forward`, ..., `gru_backward` (see steps.cpp)."""

    functions: dict[str, Callable[..., None]]

    def __getattr__(self, name: str) -> Callable[..., None]:
        try:
            return self.functions[name]
        except KeyError:
            raise AttributeError(name) from None


class _Unavailable(Exception):
    pass


_reason: str | None = None


def unavailable_reason() -> str | None:
    """Why the compiled kernels are not in use (None when they are, or before the first try)."""
    return _reason


def kernels(suffix: str) -> Kernels | None:
    """The compiled kernels for `f32` or `f64`, or None where the library is unavailable."""
    library = _library()
    if library is None:
        return None
    return _bind(library, suffix)


@functools.cache
def _bind(library: ctypes.CDLL, suffix: str) -> Kernels:
    functions = {}
    for name, (pointers, sizes) in FUNCTIONS.items():
        function = getattr(library, f"rnnlm_{name}_{suffix}")
        function.argtypes = [ctypes.c_void_p] * pointers + [ctypes.c_int64] * sizes
        function.restype = None
        functions[name] = function
    return Kernels(functions)


@functools.cache
def _library() -> ctypes.CDLL | None:
    global _reason
    if os.environ.get("RNNLM_NATIVE", "1") == "0":
        _reason = "RNNLM_NATIVE=0"
        return None
    try:
        return ctypes.CDLL(str(build()))
    except (_Unavailable, OSError) as error:
        _reason = str(error)
        warnings.warn(f"the compiled recurrences are unavailable ({error}); training runs the "
                      "slower PyTorch-operations path (rnnlm.neural.bptt)", stacklevel=2)
        return None


def _compiler() -> str:
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not compiler:
        raise _Unavailable("no C++ compiler on PATH (install g++, or set CXX)")
    return compiler


def _cache_dir() -> Path:
    if "RNNLM_NATIVE_CACHE" in os.environ:
        return Path(os.environ["RNNLM_NATIVE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rnnlm" / "native"


def _flags() -> tuple[str, ...]:
    try:
        features = next((line.split(":", 1)[1].split() for line in
                         Path("/proc/cpuinfo").read_text().splitlines()
                         if line.startswith("flags")), [])
    except OSError:
        features = []
    return FLAGS + AVX2 if {"avx2", "fma"} <= set(features) else FLAGS


def build() -> Path:
    """The library's path, compiled first if this source, compiler and machine have no build."""
    compiler = _compiler()
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True,
                                 check=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise _Unavailable(f"{compiler} --version failed: {error}") from error
    flags = _flags()
    digest = hashlib.sha256()
    for part in (SOURCE.read_bytes(), " ".join(flags).encode(), version.encode()):
        digest.update(part)
    target = _cache_dir() / f"steps-{digest.hexdigest()[:16]}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Compiled under a temporary name and renamed: processes building at once never load a
    # half-written library.
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=".steps-", suffix=".so")
    os.close(fd)
    try:
        done = subprocess.run([compiler, *flags, str(SOURCE), "-o", partial],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise _Unavailable(f"{compiler} could not build {SOURCE.name}: "
                               f"{done.stderr.strip()[-500:]}")
        os.replace(partial, target)
    finally:
        Path(partial).unlink(missing_ok=True)
    return target


def main() -> int:
    """Build the library now (the install step): says where it is, or why training will run the
    PyTorch-operations path instead. Never fails the install."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        available = _library() is not None
    if available:
        print(f"rnnlm: compiled recurrences ready ({build()})")
    else:
        print(f"rnnlm: compiled recurrences unavailable ({_reason}); training will use the "
              "PyTorch-operations path", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
