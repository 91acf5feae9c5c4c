"""The models against the chapter's formulas and against torch.nn's own implementation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rnnlm.neural import bptt
from rnnlm.neural.bptt import gru_recurrence, tanh_recurrence
from rnnlm.neural.models import RecurrentLM, ScratchRNN, WindowMLP, build_model, detach_state
from rnnlm.neural.native import library

V, H, B, T = 11, 16, 3, 7


@pytest.fixture(autouse=True)
def seeded() -> None:
    torch.manual_seed(0)


@pytest.fixture(params=["compiled", "torch-ops"])
def recurrences(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test that takes it runs twice: with the compiled step kernels and with the
    recurrences written in PyTorch operations (the fallback where no compiler is at hand)."""
    if request.param == "compiled":
        assert library.kernels("f64") is not None, library.unavailable_reason()
    else:
        monkeypatch.setattr(bptt, "_kernels", lambda *tensors: None)
    return str(request.param)


def test_one_hot_product_is_a_row_lookup() -> None:
    w_xh = torch.randn(V, H)
    x = torch.randint(0, V, (B, T))
    torch.testing.assert_close(F.one_hot(x, V).float() @ w_xh, F.embedding(x, w_xh),
                               rtol=0, atol=0)


def test_scratch_rnn_is_initialised_as_the_book_does() -> None:
    model = ScratchRNN(200, 300)
    for weight in (model.W_xh, model.W_hh, model.W_hq):
        assert abs(weight.std().item() - 0.01) < 0.0005
    assert not model.b_h.any() and not model.b_q.any()


def test_scratch_rnn_follows_the_formulas_step_by_step() -> None:
    model = ScratchRNN(V, H).double()
    x = torch.randint(0, V, (B, T))
    h = torch.randn(B, H, dtype=torch.double)
    logits, last = model(x, h)
    for t in range(T):  # H_t = tanh(X_t W_xh + H_{t-1} W_hh + b_h), O_t = H_t W_hq + b_q
        x_t = F.one_hot(x[:, t], V).double()
        h = torch.tanh(x_t @ model.W_xh + h @ model.W_hh + model.b_h)
        torch.testing.assert_close(logits[:, t], h @ model.W_hq + model.b_q)
    torch.testing.assert_close(last, h)


def copy_into_torch_rnn(scratch: ScratchRNN) -> RecurrentLM:
    rnn = RecurrentLM("rnn", V, H)
    with torch.no_grad():
        rnn.rnn.weight_ih_l0.copy_(scratch.W_xh.t())
        rnn.rnn.weight_hh_l0.copy_(scratch.W_hh.t())
        rnn.rnn.bias_ih_l0.copy_(scratch.b_h)
        rnn.rnn.bias_hh_l0.zero_()
        rnn.decoder.weight.copy_(scratch.W_hq.t())
        rnn.decoder.bias.copy_(scratch.b_q)
    return rnn


def test_scratch_weights_in_nn_rnn_give_the_same_logits_and_gradients() -> None:
    scratch = ScratchRNN(V, H, sigma=0.3)
    rnn = copy_into_torch_rnn(scratch)
    x, y = torch.randint(0, V, (B, T)), torch.randint(0, V, (B, T))
    h0 = torch.randn(B, H) * 0.5
    ours, ours_h = scratch(x, h0)
    # torch.nn.RNN itself (not this project's CPU path) on one-hot inputs.
    out, theirs_h = rnn.rnn(F.one_hot(x.t(), V).float(), h0[None])
    theirs = rnn.decoder(out).transpose(0, 1)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    torch.testing.assert_close(ours_h, theirs_h[0], rtol=0, atol=1e-5)
    F.cross_entropy(ours.reshape(-1, V), y.reshape(-1)).backward()
    F.cross_entropy(theirs.reshape(-1, V), y.reshape(-1)).backward()
    grads = [(scratch.W_xh.grad, rnn.rnn.weight_ih_l0.grad.t()),
             (scratch.W_hh.grad, rnn.rnn.weight_hh_l0.grad.t()),
             (scratch.b_h.grad, rnn.rnn.bias_ih_l0.grad),
             (scratch.W_hq.grad, rnn.decoder.weight.grad.t()),
             (scratch.b_q.grad, rnn.decoder.bias.grad)]
    for mine, theirs_grad in grads:
        torch.testing.assert_close(mine, theirs_grad, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["rnn", "gru"])
@pytest.mark.parametrize(("embed", "layers"), [(0, 1), (5, 2), (0, 3)])
def test_the_cpu_path_equals_torch_nn(kind: str, embed: int, layers: int,
                                      recurrences: str) -> None:
    """Outputs, final state and every parameter's gradient, in float64, against the torch.nn
    layer itself (the gradient also flows in through the final state)."""
    model = RecurrentLM(kind, V, H, num_layers=layers, embed=embed).double()  # type: ignore[arg-type]
    x = torch.randint(0, V, (B, T))
    h0 = torch.randn(layers, B, H, dtype=torch.double)
    ours, ours_h = model(x, h0)
    (ours.square().sum() + ours_h.sum()).backward()
    ours_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    inputs = model.embedding(x) if embed else F.one_hot(x, V).double()
    out, theirs_h = model.rnn(inputs.transpose(0, 1), h0)  # time-major
    theirs = model.decoder(out).transpose(0, 1)
    (theirs.square().sum() + theirs_h.sum()).backward()
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(ours_h, theirs_h)
    for mine, theirs_grad in zip(ours_grads, (p.grad for p in model.parameters()), strict=True):
        torch.testing.assert_close(mine, theirs_grad)


@pytest.mark.parametrize("kind", ["rnn", "gru"])
def test_under_bf16_autocast_the_cpu_path_multiplies_in_bfloat16(kind: str, recurrences: str
                                                                  ) -> None:
    """bf16-mixed: the products run in bfloat16 (the outputs move off float32's by bfloat16's
    rounding), and outputs, final state and gradients stay as near float32's as torch.nn's own
    layer under the same autocast does."""
    model = RecurrentLM(kind, V, 64, embed=8)  # type: ignore[arg-type]
    x, h0 = torch.randint(0, V, (8, 20)), torch.randn(1, 8, 64)

    def run(ours: bool, bf16: bool) -> list[torch.Tensor]:
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            if ours:
                logits, h = model(x, h0)
            else:
                assert model.embedding is not None
                out, h = model.rnn(model.embedding(x.t()), h0)
                logits = model.decoder(out).transpose(0, 1)
        logits, h = logits.float(), h.float()
        (logits.square().sum() + h.sum()).backward()
        return [logits.detach(), h.detach(), *(p.grad.clone() for p in model.parameters())]

    float32, ours, theirs = run(True, False), run(True, True), run(False, True)
    assert ours[0].dtype == torch.float32 and not torch.equal(ours[1], float32[1])
    for reference, mine, torch_nn in zip(float32, ours, theirs, strict=True):
        assert (mine - reference).abs().max() <= 2 * (torch_nn - reference).abs().max()


@pytest.mark.parametrize("gates", [1, 3])  # tanh, GRU
def test_bptt_gradients_pass_gradcheck(gates: int, recurrences: str) -> None:
    def leaf(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return (torch.randn(*shape, dtype=torch.double) * scale).requires_grad_()

    projected, h0, w = leaf(5, 2, 4 * gates), leaf(2, 4), leaf(4, 4 * gates, scale=0.5)
    if gates == 1:
        assert torch.autograd.gradcheck(tanh_recurrence, (projected, h0, w))
    else:
        assert torch.autograd.gradcheck(gru_recurrence, (projected, h0, w, leaf(12)))


@pytest.mark.parametrize("kind", ["scratch", "rnn", "gru", "lstm", "mlp"])
def test_every_kind_maps_ids_and_state_to_logits_and_state(kind: str) -> None:
    model = build_model(kind, V, H, context=4)  # type: ignore[arg-type]
    x = torch.randint(0, V, (B, T))
    logits, _ = model(x, model.initial_state(B))
    assert logits.shape == (B, T, V)
    # Two halves with the state carried equal the whole sequence at once.
    first, half = model(x[:, :3], model.initial_state(B))
    second, _ = model(x[:, 3:], detach_state(half))
    torch.testing.assert_close(torch.cat([first, second], dim=1), logits)


def test_the_window_mlp_is_the_concatenated_one_hot_product() -> None:
    context = 3
    model = WindowMLP(V, H, context).double()
    x = torch.randint(0, V, (1, 6))
    logits, state = model(x, model.initial_state(1))
    assert state.tolist() == [x[0, -2:].tolist()]  # the last context - 1 tokens
    blocks = model.inputs.weight.view(context, V + 1, H)[:, :V]  # W_xh, one block per position
    w_xh = blocks.reshape(context * V, H)
    padded = [None, None, *x[0].tolist()]
    for t in range(6):
        window = padded[t : t + context]  # oldest first; None before the split's start
        onehots = [torch.zeros(V, dtype=torch.double) if tok is None
                   else F.one_hot(torch.tensor(tok), V).double() for tok in window]
        h = torch.tanh(torch.cat(onehots) @ w_xh + model.b_h)
        torch.testing.assert_close(logits[0, t], model.decoder(h))


def test_tied_weights_need_matching_sizes() -> None:
    tied = RecurrentLM("lstm", V, 8, embed=8, tie_weights=True)
    assert tied.decoder.weight is tied.embedding.weight
    with pytest.raises(ValueError, match=r"model\.embed == model\.hidden"):
        RecurrentLM("gru", V, 8, embed=4, tie_weights=True)
