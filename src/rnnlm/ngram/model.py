"""Smoothed n-gram language models: the book's additive estimates, add-k, modified Kneser-Ney.

Every method is written in one interpolated form, order by order (h: the k-1 tokens before w):

    P_k(w | h) = num_k(h, w) / den_k(h) + lam_k(h) * prior_k(w)

with num = 0 for an unseen n-gram and (num/den, lam) = (0, 1) for a context with nothing counted
after it. The methods differ only in these three tables and in the prior: the uniform
distribution, the model's own unigram estimate, or the order below. A context count n(h) is the
number of times h is followed by a token in the training stream (the sum of its n-gram counts),
so that every conditional distribution sums to one exactly.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from rnnlm.errors import RnnlmError
from rnnlm.kernels import add_counts
from rnnlm.ngram.counts import MISSING, NgramCounts, chunks, narrow_counts
from rnnlm.scoring import from_log_probs, from_probs

Method = Literal["additive", "laplace", "kneser_ney"]
Prior = Literal["uniform", "unigram", "lower"]
Discounts = tuple[float, float, float]

# KenLM's --discount_fallback values, used where count-of-counts cannot estimate discounts.
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)


@dataclass(frozen=True)
class OrderTerms:
    """The tables of one order. num is not held: it is a function of an integer per k-gram,
    `counted - discount[min(counted, 3)]`, so that an order costs no float per n-gram (a
    corpus of a gigabyte has a hundred million of them). den and lam end with one extra slot
    that MISSING (-1) indexes."""

    counted: np.ndarray  # per k-gram id: its count, or its continuation count (Kneser-Ney)
    discount: np.ndarray  # 4 floats: what a count of 0, 1, 2, 3+ gives away (0 unless KN)
    den: np.ndarray  # per context, i.e. per (k-1)-gram id
    lam: np.ndarray  # per context

    def num(self, gram: np.ndarray) -> np.ndarray:
        """num_k of each k-gram id (0 for MISSING)."""
        seen = gram >= 0
        counted = self.counted[np.where(seen, gram, 0)].astype(np.float64)
        counted[~seen] = 0.0
        return np.maximum(counted - self.discount[np.minimum(counted, 3).astype(np.intp)], 0.0)


@dataclass(frozen=True)
class Smoothing:
    """A smoothing method and what it is given: a model is (re)built from this and its counts
    only, whether it was just fitted, truncated to a lower order or loaded from disk."""

    method: Method
    eps: tuple[float, ...] = ()  # additive: one per order
    k: float = 1.0  # laplace: added to every count

    def __post_init__(self) -> None:
        if self.method not in FITTERS:
            raise RnnlmError(f"unknown n-gram method {self.method!r}; choose one of "
                             f"{', '.join(FITTERS)}")

    def fit(self, counts: NgramCounts) -> NgramModel:
        return FITTERS[self.method](counts, self)

    def up_to(self, order: int) -> Smoothing:
        """The same smoothing for a model of a lower order."""
        return replace(self, eps=self.eps[:order])

    def given(self) -> dict[str, list[float] | float]:
        """What the method is given, as model.json and the reports record it."""
        if self.method == "additive":
            return {"eps": list(self.eps)}
        return {"k": self.k} if self.method == "laplace" else {}

    @classmethod
    def saved(cls, method: Method, given: Mapping[str, Any]) -> Smoothing:
        """The inverse of `given`."""
        return cls(method, tuple(float(e) for e in given.get("eps", ())),
                   float(given.get("k", 1.0)))


@dataclass(frozen=True, eq=False)
class NgramModel:
    smoothing: Smoothing
    counts: NgramCounts
    terms: tuple[OrderTerms, ...]
    prior: Prior
    discounts: tuple[Discounts, ...] = ()  # Kneser-Ney's, per order, estimated from the counts

    @property
    def method(self) -> Method:
        return self.smoothing.method

    @property
    def settings(self) -> dict[str, Any]:
        """What the method was given, and what it found (Kneser-Ney's discounts)."""
        found = {"discounts": [list(d) for d in self.discounts]} if self.discounts else {}
        return {**self.smoothing.given(), **found}

    def run_params(self) -> dict[str, object]:
        """The settings as flat MLflow params (a list of discounts per order)."""
        flat: dict[str, object] = dict(self.smoothing.given())
        for k, discounts in enumerate(self.discounts, start=1):
            flat[f"discounts_order{k}"] = list(discounts)
        return flat

    @property
    def order(self) -> int:
        return self.counts.order

    @property
    def vocab_size(self) -> int:
        return self.counts.vocab_size

    def truncated(self, order: int) -> NgramModel:
        """The same method on the same counts, up to a lower order (order 1: its unigram)."""
        return self.smoothing.up_to(order).fit(self.counts.truncated(order))

    def perplexity(self, ids: np.ndarray, what: str = "the n-gram model") -> float:
        """A chunk of tokens at a time: a split of millions costs a chunk's temporaries."""
        cores = len(os.sched_getaffinity(0))
        return from_log_probs(self.token_log_probs(ids, workers=cores), what)

    def token_log_probs(self, ids: np.ndarray, interrupt: Callable[[], None] | None = None,
                        chunk: int = 1 << 16, workers: int = 1) -> np.ndarray:
        """log of `token_probs`, as the protocol sums them (-inf for a probability of 0), a
        chunk at a time (each with its n-1 tokens of context): memory bounded by the chunk.
        `interrupt` is called before each chunk: it raises to stop the work. Chunks are
        independent, so `workers` threads may score them (numpy lets go of the GIL): the
        same bits whatever the number."""
        out = np.empty(max(len(ids) - 1, 0))

        def score(start: int) -> None:  # the positions start..stop-1 are predicted
            stop = min(start + chunk, len(ids))
            probs = self.token_probs(ids[max(start - max(self.order - 1, 1), 0) : stop])
            with np.errstate(divide="ignore"):
                out[start - 1 : stop - 1] = np.log(probs[len(probs) - (stop - start) :])

        starts = range(1, len(ids), chunk)
        if workers > 1 and interrupt is None:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(score, starts))
            return out
        for start in starts:
            if interrupt is not None:
                interrupt()
            score(start)
        return out

    def _mix(self, k: int, gram: np.ndarray, context: np.ndarray | int,
             num: np.ndarray | None, prior: np.ndarray | float) -> np.ndarray:
        terms = self.terms[k - 1]
        den = terms.den[context]
        counted = terms.num(gram) if num is None else num
        ratio = np.divide(counted, den, out=np.zeros(np.shape(counted)), where=den > 0)
        return ratio + terms.lam[context] * prior

    def token_probs(self, ids: np.ndarray) -> np.ndarray:
        """P(ids[i] | ids[:i]) for i = 1..N-1: the scoring protocol.

        Token i is predicted from at most the order-1 tokens before it inside `ids`; near the start
        the context is shorter and order i+1 (the model's own lower-order estimate) is used.
        """
        n = len(ids)
        if n < 2:
            return np.empty(0)
        grams = self.counts.gram_ids(ids)
        probs = np.empty(n)
        unigram = probs
        for k in range(1, min(self.order, n) + 1):
            start = max(k - 1, 1)
            context = grams[k - 2][start - 1 : n - 1] if k > 1 else 0
            prior = self._prior(k, unigram[start:], probs[start:])
            probs[start:] = self._mix(k, grams[k - 1][start:], context, None, prior)
            if k == 1:
                unigram = probs.copy()
        return probs[1:]

    def _prior(self, k: int, unigram: np.ndarray, lower: np.ndarray) -> np.ndarray | float:
        """What order k interpolates with; order 1 always with the uniform distribution."""
        if k == 1 or self.prior == "uniform":
            return 1.0 / self.vocab_size
        return unigram if self.prior == "unigram" else lower

    def next_token_probs(self, context: Sequence[int] | np.ndarray) -> np.ndarray:
        """The distribution over the whole vocabulary of the token after `context`."""
        context = np.asarray(context, dtype=np.int64)
        context = context[max(len(context) - (self.order - 1), 0) :]
        grams = self.counts.gram_ids(context) if len(context) else []
        probs = np.full(self.vocab_size, 1.0 / self.vocab_size)
        unigram = probs
        for k in range(1, len(context) + 2):
            context_id = 0 if k == 1 else int(grams[k - 2][-1])
            num = np.zeros(self.vocab_size)
            if context_id != MISSING:
                rows, tokens = self.counts.children(k, context_id)
                num[tokens] = self.terms[k - 1].num(np.arange(rows.start, rows.stop))
            prior = self._prior(k, unigram, probs)
            probs = self._mix(k, np.empty(0, dtype=np.int64), context_id, num, prior)
            if k == 1:
                unigram = probs
        return probs


NO_DISCOUNT = np.zeros(4)


def _den_lam(counts: NgramCounts, k: int, counted: np.ndarray,
             mass: Callable[[np.ndarray, np.ndarray, int], np.ndarray | float],
             added: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Order k's per-context tables: den = the sum of `counted` over each context's k-grams (plus
    `added`), lam = mass / den (1 where den is 0); each ends with the slot MISSING reads.

    A run of contexts is done at a time, from the rows of their k-grams (rows are sorted by
    context): `mass(context, counted, n)` gets each row's context within the run, its value and
    the run's length. Only den and lam are ever held per context.
    """
    n_contexts = len(counts.keys[k - 2]) if k > 1 else 1
    den = np.zeros(n_contexts + 1)
    den[-1] = added
    lam = np.ones(n_contexts + 1)
    table = counts.keys[k - 1]
    for run in chunks(n_contexts):
        start, stop = np.searchsorted(table, [run.start * counts.vocab_size,
                                              run.stop * counts.vocab_size])
        rows = slice(int(start), int(stop))
        context = counts.contexts(k, rows) - run.start
        values = counted[rows]
        n = run.stop - run.start
        part = np.bincount(context, weights=values.astype(np.float64), minlength=n) + added
        den[run] = part
        np.divide(mass(context, values, n), part, out=lam[run], where=part > 0)
    return den, lam


def additive(counts: NgramCounts, eps: Sequence[float]) -> NgramModel:
    """The book's estimates: P(x) = (n(x) + e1/m) / (n + e1), and for k >= 2
    P(w | h) = (n(h, w) + e_k P(w)) / (n(h) + e_k), the prior always being the unigram P(w)."""
    if len(eps) != counts.order or min(eps) < 0:
        raise RnnlmError(f"additive smoothing needs {counts.order} values eps >= 0, got {eps}")
    terms = []
    for k in range(1, counts.order + 1):
        e = float(eps[k - 1])
        den, lam = _den_lam(counts, k, counts.counts[k - 1], lambda *_, e=e: e, added=e)
        terms.append(OrderTerms(counts.counts[k - 1], NO_DISCOUNT, den, lam))
    return NgramModel(Smoothing("additive", tuple(float(e) for e in eps)), counts, tuple(terms),
                      "unigram")


def laplace(counts: NgramCounts, k_add: float) -> NgramModel:
    """Add-k on each order: P(w | h) = (n(h, w) + k) / (n(h) + k V)."""
    if not k_add > 0:
        raise RnnlmError(f"add-k smoothing needs k > 0, got {k_add}")
    added = k_add * counts.vocab_size
    terms = []
    for k in range(1, counts.order + 1):
        den, lam = _den_lam(counts, k, counts.counts[k - 1], lambda *_: added, added=added)
        terms.append(OrderTerms(counts.counts[k - 1], NO_DISCOUNT, den, lam))
    return NgramModel(Smoothing("laplace", k=float(k_add)), counts, tuple(terms), "uniform")


def continuation_counts(counts: NgramCounts, k: int) -> np.ndarray:
    """N1+(. g): for each k-gram g, the number of distinct tokens seen right before it."""
    # At most one per (k+1)-gram: uint32 holds them unless an order has 4 billion n-grams.
    wide = len(counts.keys[k]) > np.iinfo(np.uint32).max
    totals = np.zeros(len(counts.keys[k - 1]), dtype=np.int64 if wide else np.uint32)
    for rows in chunks(len(counts.keys[k])):
        add_counts(totals, counts.suffixes(k + 1, rows))
    return narrow_counts(totals)


def modified_discounts(values: np.ndarray) -> Discounts:
    """Chen & Goodman's D1, D2, D3+ from the count-of-counts n1..n4 of one order.

    Y = n1 / (n1 + 2 n2), D_r = r - (r + 1) Y n_{r+1} / n_r. Where a count-of-count is zero or a
    discount falls outside (0, r], KenLM's fallback (0.5, 1, 1.5) is used instead.
    """
    n = np.zeros(6, dtype=np.int64)
    for rows in chunks(len(values)):  # a capped copy of the whole order would cost its size
        n += np.bincount(np.minimum(values[rows], 5), minlength=6)
    n = n[1:5].astype(np.float64)
    if (n == 0).any():
        return FALLBACK_DISCOUNTS
    y = n[0] / (n[0] + 2 * n[1])
    d1, d2, d3 = (float(r - (r + 1) * y * n[r] / n[r - 1]) for r in (1, 2, 3))
    if not (0 < d1 <= 1 and 0 < d2 <= 2 and 0 < d3 <= 3):
        return FALLBACK_DISCOUNTS
    return d1, d2, d3


def kneser_ney(counts: NgramCounts) -> NgramModel:
    """Interpolated modified Kneser-Ney down to the uniform distribution.

    The highest order uses raw counts, lower orders continuation counts; each order has three
    discounts D1, D2, D3+ and gives the mass it removes,
    (D1 N1(h.) + D2 N2(h.) + D3 N3+(h.)) / n(h), to the order below.
    """
    terms = []
    all_discounts = []
    for k in range(1, counts.order + 1):
        c = counts.counts[k - 1] if k == counts.order else continuation_counts(counts, k)
        d1, d2, d3 = modified_discounts(c)
        all_discounts.append((d1, d2, d3))

        def mass(context: np.ndarray, values: np.ndarray, n: int, d1: float = d1,
                 d2: float = d2, d3: float = d3) -> np.ndarray:
            """D1 N1(h.) + D2 N2(h.) + D3 N3+(h.) for each context of the run."""
            capped = np.minimum(values, 3)
            return (d1 * np.bincount(context[capped == 1], minlength=n)
                    + d2 * np.bincount(context[capped == 2], minlength=n)
                    + d3 * np.bincount(context[capped == 3], minlength=n))

        den, lam = _den_lam(counts, k, c, mass)
        terms.append(OrderTerms(c, np.array([0.0, d1, d2, d3]), den, lam))
    return NgramModel(Smoothing("kneser_ney"), counts, tuple(terms), "lower",
                      tuple(all_discounts))


# The one table of methods: a new one is a function here and a value of `Method`.
FITTERS: dict[Method, Callable[[NgramCounts, Smoothing], NgramModel]] = {
    "additive": lambda counts, s: additive(counts, s.eps),
    "laplace": lambda counts, s: laplace(counts, s.k),
    "kneser_ney": lambda counts, s: kneser_ney(counts),
}


class UniformModel:
    """Every token 1/V: the reference whose perplexity is the vocabulary size."""

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size

    def token_probs(self, ids: np.ndarray) -> np.ndarray:
        return np.full(max(len(ids) - 1, 0), 1.0 / self.vocab_size)

    def perplexity(self, ids: np.ndarray, what: str = "the uniform model") -> float:
        return from_probs(self.token_probs(ids), what)

    def next_token_probs(self, context: Sequence[int] | np.ndarray) -> np.ndarray:
        return np.full(self.vocab_size, 1.0 / self.vocab_size)

