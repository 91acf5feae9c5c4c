import numpy as np
import pyarrow as pa
import pytest

from rnnlm import kernels
from rnnlm.kernels import add_counts, count_values, index_dtype, remap


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernels, "_CHUNK", 7)  # exercise chunk boundaries on small arrays


@pytest.mark.parametrize(("index_type", "table_type"),
                         [(np.int8, np.int8), (np.int8, np.int32), (np.int16, np.int16),
                          (np.uint32, np.int8), (np.int32, np.int32)])
def test_remap_equals_numpy_indexing(index_type, table_type) -> None:
    rng = np.random.default_rng(0)
    table = rng.integers(0, 100, size=120).astype(table_type)
    indices = rng.integers(0, 120, size=1000).astype(index_type)
    out = remap(indices, table)
    assert out.dtype == table.dtype
    assert np.array_equal(out, table[indices])
    assert np.array_equal(remap(pa.array(indices), table), table[indices])


def test_count_values_equals_bincount() -> None:
    values = np.random.default_rng(1).integers(0, 50, size=999).astype(np.int8)
    assert np.array_equal(count_values(values, minlength=60), np.bincount(values, minlength=60))
    assert count_values(np.array([], dtype=np.int8), minlength=3).tolist() == [0, 0, 0]


def test_index_dtype_is_the_narrowest() -> None:
    assert [index_dtype(n) for n in (1, 128, 129, 32768, 32769)] == [
        np.int8, np.int8, np.int16, np.int16, np.int32]


@pytest.mark.parametrize("size", [5, 50, 500])  # totals longer than, and shorter than, values
def test_add_counts_equals_adding_a_bincount(size) -> None:
    values = np.random.default_rng(2).integers(0, 40, size=size).astype(np.int32)
    totals = np.arange(60, dtype=np.int64)
    expected = totals + np.bincount(values, minlength=60)
    add_counts(totals, values)
    assert np.array_equal(totals, expected)
