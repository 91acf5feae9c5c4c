"""The Lightning module and data module: state handling, the scoring protocol, clipping,
determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnlm.neural.data import SplitChunks, TokenDataModule
from rnnlm.neural.options import TrainerOptions
from rnnlm.neural.task import LanguageModelTask
from rnnlm.neural.trainer import build_trainer

V = 9
TINY = {"kind": "gru", "hidden": 12}


def stream(n: int, seed: int = 0) -> np.ndarray:
    """A Markov-ish id stream, so models have something to learn."""
    rng = np.random.default_rng(seed)
    ids = np.empty(n, dtype=np.int32)
    ids[0] = 0
    for i in range(1, n):
        ids[i] = (ids[i - 1] + rng.choice([1, 2, 3], p=[0.7, 0.2, 0.1])) % V
    return ids


def task(carry_state: bool = True, **model) -> LanguageModelTask:
    torch.manual_seed(0)
    return LanguageModelTask(V, {**TINY, **model}, carry_state=carry_state)


class FakeTrainer:
    """Just what the module's hooks read, to drive them without a Trainer (a `validate` call)."""

    class state:
        fn = "validate"

    sanity_checking = False
    current_epoch = 0
    optimizers = (torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1),)


def batches(n_batches: int = 3, batch_size: int = 4, steps: int = 5):
    ids = torch.from_numpy(stream(batch_size * steps * n_batches + 1).astype(np.int64))
    rows = ids[:-1].view(batch_size, -1)
    labels = ids[1:].view(batch_size, -1)
    return [(rows[:, i * steps : (i + 1) * steps], labels[:, i * steps : (i + 1) * steps])
            for i in range(n_batches)]


@pytest.mark.parametrize("kind", ["scratch", "rnn", "gru", "lstm", "mlp"])
def test_sequential_training_carries_a_detached_state_and_resets_each_epoch(kind, monkeypatch
                                                                           ) -> None:
    module = task(kind=kind)
    monkeypatch.setattr(LanguageModelTask, "trainer", FakeTrainer(), raising=False)
    module.on_train_epoch_start()
    first, second, _ = batches()
    loss = module.training_step(first, 0)
    loss.backward()  # frees the first minibatch's graph
    carried = module._state
    expected_logits, _ = module.model(second[0], carried)
    # A state still attached to the first graph would make this backward fail.
    module.training_step(second, 1).backward()
    for part in carried if isinstance(carried, tuple) else (carried,):
        assert part.grad_fn is None and not part.requires_grad
    # The second step started from the carried state, not a fresh one.
    fresh_logits, _ = module.model(second[0], module.model.initial_state(4))
    assert not torch.allclose(expected_logits, fresh_logits)
    module.on_train_epoch_start()
    assert module._state is None


def test_random_sampling_starts_every_minibatch_fresh(monkeypatch) -> None:
    module = task(carry_state=False)
    monkeypatch.setattr(LanguageModelTask, "trainer", FakeTrainer(), raising=False)
    module.on_train_epoch_start()
    first, second, _ = batches()
    module.training_step(first, 0)
    assert module._state is None
    loss = module.training_step(second, 1)
    logits, _ = module.model(second[0], module.model.initial_state(4))
    expected = F.cross_entropy(logits.reshape(-1, V), second[1].reshape(-1))
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("chunk", [1, 7, 10_000])
def test_validation_is_the_scoring_protocol_whatever_the_chunk(chunk: int, monkeypatch) -> None:
    module = task(kind="lstm")
    monkeypatch.setattr(LanguageModelTask, "trainer", FakeTrainer(), raising=False)
    module.eval()
    val = stream(300, seed=1)
    chunks = list(SplitChunks(val, chunk))
    assert sum(c[1].numel() for c in chunks) == len(val) - 1  # every token after the first, once
    with torch.no_grad():
        passes = []
        for _ in range(2):  # the second pass must start from the split's start again
            module.on_validation_epoch_start()
            for i, batch in enumerate(chunks):
                module.validation_step(batch, i)
            passes.append(math.exp(float(module._eval_nll) / module._eval_tokens))
        assert passes[0] == passes[1]
        ours = passes[0]
        # Reference: the whole split in one forward pass from a fresh state.
        x = torch.from_numpy(val[:-1].astype(np.int64))[None]
        logits, _ = module(x)
        nll = F.cross_entropy(logits[0], torch.from_numpy(val[1:].astype(np.int64)))
    assert ours == pytest.approx(math.exp(nll.item()), rel=1e-6)


class ClipRecorder(LanguageModelTask):
    """Measures the global gradient norm before and after the Trainer clips it."""

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None,
                                    gradient_clip_algorithm=None) -> None:
        norm = lambda: torch.linalg.vector_norm(  # noqa: E731
            torch.stack([p.grad.norm() for p in self.parameters() if p.grad is not None]))
        self.before = [*getattr(self, "before", []), norm().item()]
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
        self.after = [*getattr(self, "after", []), norm().item()]


def fit(module: LanguageModelTask, tmp_path, clip: float = 1.0, epochs: int = 2,
        scheme: str = "sequential", seed: int = 0) -> LanguageModelTask:
    data = TokenDataModule(stream(2000), stream(200, seed=1), batch_size=4, num_steps=10,
                           scheme=scheme, seed=seed)  # type: ignore[arg-type]
    options = TrainerOptions(epochs=epochs, clip=clip, accelerator="cpu", devices=1)
    trainer = build_trainer(options, tmp_path, progress=False)
    trainer.fit(module, datamodule=data)
    return module


def test_gradient_clipping_bounds_the_global_norm(tmp_path) -> None:
    torch.manual_seed(0)
    module = ClipRecorder(V, {**TINY, "kind": "rnn"}, optimizer="sgd", lr=5.0)
    fit(module, tmp_path, clip=0.5, epochs=1)
    assert max(module.before) > 0.5  # clipping had something to do
    assert max(module.after) <= 0.5 * (1 + 1e-5)


@pytest.mark.parametrize("scheme", ["sequential", "random"])
def test_the_same_seed_gives_the_same_numbers(tmp_path, scheme: str) -> None:
    runs = []
    for i in range(2):
        torch.manual_seed(0)
        module = LanguageModelTask(V, {**TINY, "dropout": 0.2, "embed": 6},
                                   carry_state=scheme == "sequential")
        runs.append(fit(module, tmp_path / str(i), scheme=scheme).history)
    assert runs[0] == runs[1]
    assert runs[0][-1]["val_ppl"] < runs[0][0]["train_ppl"]  # it learned something


def test_the_logged_rate_is_the_one_each_epoch_trained_with(tmp_path) -> None:
    torch.manual_seed(0)
    module = LanguageModelTask(V, TINY, optimizer="sgd", lr=0.05, schedule="cosine")
    history = fit(module, tmp_path, epochs=3).history
    assert [row["lr"] for row in history] == pytest.approx([0.05, 0.0375, 0.0125])


def test_offline_scoring_equals_the_validation_pass(tmp_path) -> None:
    from rnnlm.errors import RnnlmError
    from rnnlm.neural.inference import split_perplexity

    torch.manual_seed(0)
    module = fit(LanguageModelTask(V, TINY), tmp_path, epochs=1)
    assert split_perplexity(module, stream(200, seed=1), chunk=13) == pytest.approx(
        module.history[-1]["val_ppl"], rel=1e-6)
    with pytest.raises(RnnlmError, match="fewer than 2 tokens"):
        split_perplexity(module, stream(1))


def test_a_saved_model_loads_safely_and_samples_as_the_full_forward_pass(tmp_path) -> None:
    from rnnlm.neural.inference import TrainedNetwork, load_task

    torch.manual_seed(0)
    module = fit(LanguageModelTask(V, TINY), tmp_path, epochs=1)
    loaded = load_task(tmp_path / "best.ckpt")  # torch.load(weights_only=True) inside
    ids = stream(40, seed=3)
    with torch.no_grad():
        logits, _ = loaded(torch.from_numpy(ids.astype(np.int64))[None])
    expected = torch.softmax(logits[0].double(), dim=-1).numpy()
    step_by_step = TrainedNetwork(loaded)
    for i in range(1, 40):  # each call feeds only the new token, the state carried
        np.testing.assert_allclose(step_by_step.next_token_probs(ids[:i]), expected[i - 1],
                                   rtol=1e-5, atol=1e-7)
    assert loaded.hparams["model"] == module.hparams["model"]
