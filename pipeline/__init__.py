"""One small module per DVC stage: read params.yaml, call the library, write outputs atomically.

Importing the package pins the CPU code paths of the numerical libraries before torch loads, so
that a stage computes the same digits on any x86-64 CPU with AVX2: PyTorch's own kernels, MKL's
matrix products (torch) and OpenBLAS's (numpy: the sequence stage's least squares) otherwise pick
their code by the CPU (AVX-512 here, AVX2 elsewhere, or MKL's generic path on AMD), and each path
rounds differently in the last digits. A variable already set in the environment wins. See
docs/reproducibility.md.
"""

import os

for _name, _value in (("ATEN_CPU_CAPABILITY", "avx2"), ("MKL_CBWR", "AVX2"),
                      ("OPENBLAS_CORETYPE", "Haswell")):
    os.environ.setdefault(_name, _value)
