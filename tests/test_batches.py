"""Properties of the book's two minibatch iterators, checked on a source whose ids are positions."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlm.errors import RnnlmError
from rnnlm.neural.batches import BatchSampler, count_batches

shapes = st.tuples(
    st.integers(min_value=1, max_value=6),  # batch_size
    st.integers(min_value=1, max_value=9),  # num_steps
    st.integers(min_value=0, max_value=400),  # extra tokens beyond the minimum
    st.sampled_from(["random", "sequential"]),
    st.integers(min_value=0, max_value=2**32 - 1),  # seed
)


def make_sampler(batch_size: int, num_steps: int, extra: int, scheme: str,
                 seed: int) -> BatchSampler:
    n = batch_size * num_steps + num_steps + extra
    # ids equal to positions make every served token identify where it came from.
    return BatchSampler(np.arange(n), batch_size, num_steps, scheme, seed)


@given(shapes, st.integers(min_value=0, max_value=3))
def test_labels_are_inputs_shifted_by_one(shape, epoch) -> None:
    sampler = make_sampler(*shape)
    batches = list(sampler.epoch(epoch))
    assert batches, "a split long enough for one minibatch must yield one"
    for inputs, labels in batches:
        assert inputs.shape == labels.shape == (sampler.batch_size, sampler.num_steps)
        assert np.array_equal(labels, inputs + 1)
        assert np.array_equal(np.diff(inputs, axis=1), np.ones_like(inputs[:, 1:]))


@given(shapes, st.integers(min_value=0, max_value=3))
def test_no_position_is_served_twice_in_an_epoch(shape, epoch) -> None:
    sampler = make_sampler(*shape)
    served = np.concatenate([inputs.ravel() for inputs, _ in sampler.epoch(epoch)])
    assert len(np.unique(served)) == len(served)


@given(shapes, st.integers(min_value=0, max_value=3))
def test_every_subsequence_starts_at_the_epochs_offset(shape, epoch) -> None:
    sampler = make_sampler(*shape)
    starts = np.concatenate([inputs[:, 0] for inputs, _ in sampler.epoch(epoch)])
    offset = starts[0] % sampler.num_steps
    if sampler.scheme == "random":
        assert np.all(starts % sampler.num_steps == offset)
    else:
        assert starts.min() == offset  # the first row of the first minibatch


@given(shapes)
def test_epoch_yields_the_counted_number_of_batches(shape) -> None:
    sampler = make_sampler(*shape)
    batches = list(sampler.epoch(0))
    offset = int(batches[0][0][0, 0]) % sampler.num_steps
    expected = count_batches(len(sampler.ids), sampler.batch_size, sampler.num_steps,
                             sampler.scheme, offset)
    assert len(batches) == expected


@given(shapes)
def test_sequential_rows_continue_across_minibatches(shape) -> None:
    batch_size, num_steps, extra, _, seed = shape
    sampler = make_sampler(batch_size, num_steps, extra, "sequential", seed)
    batches = list(sampler.epoch(0))
    for (previous, _), (current, _) in itertools.pairwise(batches):
        assert np.array_equal(current[:, 0], previous[:, -1] + 1)


@given(shapes, st.integers(min_value=0, max_value=3))
def test_same_seed_same_batches(shape, epoch) -> None:
    a, b = make_sampler(*shape), make_sampler(*shape)
    for (xa, ya), (xb, yb) in zip(a.epoch(epoch), b.epoch(epoch), strict=True):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)


@settings(max_examples=25)
@given(st.integers(min_value=0, max_value=2**31))
def test_random_order_differs_across_seeds(seed) -> None:
    ids = np.arange(5000)
    orders = [np.concatenate([x[:, 0] for x, _ in BatchSampler(ids, 4, 5, "random", s).epoch(0)])
              for s in (seed, seed + 1)]
    # 249 subsequences: two seeds agreeing on the whole order is practically impossible.
    assert not np.array_equal(orders[0], orders[1])


@pytest.mark.parametrize("scheme", ["random", "sequential"])
def test_offsets_are_random_in_range_and_vary_across_epochs(scheme) -> None:
    num_steps = 7
    sampler = BatchSampler(np.arange(3000), 4, num_steps, scheme, seed=3)
    offsets = {int(next(iter(sampler.epoch(e)))[0].min()) % num_steps for e in range(40)}
    # The smallest position served is the offset (sequential) or congruent to it (random).
    assert offsets <= set(range(num_steps))
    assert len(offsets) > 3  # 40 epochs drawing from 7 offsets: more than 3 distinct


def test_epochs_differ_for_one_seed() -> None:
    sampler = BatchSampler(np.arange(5000), 4, 5, "random", 7)
    first = next(iter(sampler.epoch(0)))[0]
    assert any(not np.array_equal(first, next(iter(sampler.epoch(e)))[0]) for e in range(1, 4))


def test_sequential_batches_are_views_of_a_memory_map(tmp_path) -> None:
    path = tmp_path / "ids.npy"
    np.save(path, np.arange(1000, dtype=np.int32))
    ids = np.load(path, mmap_mode="r")
    inputs, _ = next(iter(BatchSampler(ids, 4, 5, "sequential", 0).epoch(0)))
    assert np.shares_memory(inputs, ids)


@pytest.mark.parametrize("scheme", ["random", "sequential"])
def test_a_split_too_short_names_the_sizes(scheme) -> None:
    with pytest.raises(RnnlmError, match=r"50 tokens .* batch_size=4 x num_steps=35"):
        BatchSampler(np.arange(50), 4, 35, scheme, 0)


@pytest.mark.parametrize("scheme", ["random", "sequential"])
def test_the_count_of_an_epochs_minibatches_is_exact(scheme: str) -> None:
    sampler = BatchSampler(np.arange(285), batch_size=4, num_steps=7, scheme=scheme, seed=3)
    counts = [sampler.minibatches(e) for e in range(12)]
    assert counts == [len(list(sampler.epoch(e))) for e in range(12)]
    assert len(set(counts)) > 1  # the epoch's random offset changes it
