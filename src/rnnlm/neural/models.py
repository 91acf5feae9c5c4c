"""The language models: the chapter's RNN from its formulas, torch.nn recurrent layers, and the
chapter's network without hidden state (an MLP over a fixed window of previous tokens).

Every model maps token ids `(batch, steps)` and a state to logits `(batch, steps, vocab)` and the
state after the last step, so training, scoring and sampling treat them all alike. The state is
what the model carries from one minibatch to the next: the hidden state of a recurrent model, the
last `context - 1` tokens for the MLP.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlm.neural.bptt import gru_recurrence, tanh_recurrence
from rnnlm.neural.options import Kind

State = Tensor | tuple[Tensor, ...]


def detach_state(state: State) -> State:
    """Cut the graph at a minibatch boundary: truncated backpropagation through time."""
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


class ScratchRNN(nn.Module):
    """`H_t = tanh(X_t W_xh + H_{t-1} W_hh + b_h)`, `O_t = H_t W_hq + b_q`, as the book writes it.

    X_t is the one-hot row of token x_t, so `X_t W_xh` is row x_t of `W_xh`: the product is computed
    as that row lookup, which gives the same numbers without building V-wide one-hot vectors. The
    recurrence runs in `bptt.tanh_recurrence`, whose backward pass is the chapter's BPTT equations.
    """

    def __init__(self, vocab_size: int, hidden: int, sigma: float = 0.01) -> None:
        super().__init__()
        self.vocab_size, self.hidden = vocab_size, hidden
        # The book's initialisation: normal(0, 1) x 0.01 weights, zero biases.
        self.W_xh = nn.Parameter(torch.randn(vocab_size, hidden) * sigma)
        self.W_hh = nn.Parameter(torch.randn(hidden, hidden) * sigma)
        self.b_h = nn.Parameter(torch.zeros(hidden))
        self.W_hq = nn.Parameter(torch.randn(hidden, vocab_size) * sigma)
        self.b_q = nn.Parameter(torch.zeros(vocab_size))

    def initial_state(self, batch_size: int, device: torch.device | None = None) -> Tensor:
        return torch.zeros(batch_size, self.hidden, device=device)

    def forward(self, inputs: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        # X_t W_xh + b_h for every step at once, time-major: (steps, batch, hidden).
        x_w = F.embedding(inputs.t(), self.W_xh) + self.b_h
        states = tanh_recurrence(x_w, state, self.W_hh)
        return (states @ self.W_hq + self.b_q).transpose(0, 1), states[-1]


class RecurrentLM(nn.Module):
    """`nn.RNN`, `nn.GRU` or `nn.LSTM` (cuDNN on a GPU) between an input layer and a decoder.

    The input is one-hot (`embed=0`, the book's choice) or a learned embedding; with
    `tie_weights` the decoder shares the embedding's matrix (sizes must match).
    """

    def __init__(self, kind: Literal["rnn", "gru", "lstm"], vocab_size: int, hidden: int,
                 num_layers: int = 1, dropout: float = 0.0, embed: int = 0,
                 tie_weights: bool = False) -> None:
        super().__init__()
        self.kind, self.vocab_size = kind, vocab_size
        self.hidden, self.num_layers = hidden, num_layers
        self.embedding = nn.Embedding(vocab_size, embed) if embed else None
        layer = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[kind]
        # Time-major inside (each step contiguous); batches come in and logits go out batch-first.
        self.rnn = layer(embed or vocab_size, hidden, num_layers,
                         dropout=dropout if num_layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.decoder = nn.Linear(hidden, vocab_size)
        if tie_weights:
            if self.embedding is None or embed != hidden:
                raise ValueError(
                    f"tie_weights needs an embedding as wide as the hidden state "
                    f"(model.embed == model.hidden), got embed={embed}, hidden={hidden}")
            self.decoder.weight = self.embedding.weight

    def initial_state(self, batch_size: int, device: torch.device | None = None) -> State:
        h = torch.zeros(self.num_layers, batch_size, self.hidden, device=device)
        return (h, torch.zeros_like(h)) if self.kind == "lstm" else h

    def forward(self, inputs: Tensor, state: State) -> tuple[Tensor, State]:
        if inputs.device.type == "cpu" and self.kind != "lstm":
            assert isinstance(state, Tensor)  # a tanh RNN's or a GRU's state is one tensor
            out, state = self._cpu_layers(inputs, state)
        else:
            steps_first = inputs.t()
            if self.embedding is None:
                x = F.one_hot(steps_first, self.vocab_size).to(self.decoder.weight.dtype)
            else:
                x = self.drop(self.embedding(steps_first))
            out, state = self.rnn(x, state)
        # Decoded time-major, transposed after: the small logits move, not the states (and the
        # states' gradient arrives contiguous).
        return self.decoder(self.drop(out)).transpose(0, 1), state

    def _cpu_layers(self, inputs: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
        """`nn.RNN`'s or `nn.GRU`'s computation with its own parameters, through the recurrences
        of `bptt`, whose backward passes are written out.

        On a CPU, PyTorch runs `nn.RNN` and `nn.GRU` as separate autograd nodes per step; these
        paths give the same numbers (tested) faster (see docs/performance.md). `nn.LSTM` runs
        through oneDNN's fused LSTM, which measured faster than the same treatment, and GPUs
        keep cuDNN. Under bf16-mixed the products run in bfloat16, as autocast runs nn.RNN and
        nn.GRU, and the states stay float32 (nn.RNN's come back bfloat16 there). Time-major, so
        each step is contiguous: the states come back `(steps, batch, hidden)`.
        """
        rnn = self.rnn
        x = inputs.t()
        finals = []
        for layer in range(self.num_layers):
            weight_ih = getattr(rnn, f"weight_ih_l{layer}")
            weight_hh = getattr(rnn, f"weight_hh_l{layer}")
            bias_ih = getattr(rnn, f"bias_ih_l{layer}")
            bias_hh = getattr(rnn, f"bias_hh_l{layer}")
            # Biases that enter every step unchanged are added once, to the input projection;
            # the GRU's hidden bias sits inside r * (H W_n + b_n), so it goes to the recurrence.
            bias = bias_ih if self.kind == "gru" else bias_ih + bias_hh
            if layer == 0 and self.embedding is None:
                # One-hot x_t times W_ih^T, plus the bias, is column x_t of W_ih plus the bias:
                # a lookup in a (vocab, gates * hidden) table (contiguous: rows gather fast).
                x = F.embedding(x, (weight_ih.t() + bias).contiguous())
            else:
                if layer == 0:
                    assert self.embedding is not None
                    x = self.embedding(x)
                x = F.linear(F.dropout(x, self.drop.p if layer == 0 else rnn.dropout,
                                       self.training), weight_ih, bias)
            if self.kind == "rnn":
                x = tanh_recurrence(x, h0[layer], weight_hh.t())
            else:
                x = gru_recurrence(x, h0[layer], weight_hh.t(), bias_hh)
            finals.append(x[-1])
        return x, torch.stack(finals)


class WindowMLP(nn.Module):
    """The chapter's network without hidden state over the previous `context` tokens:
    `H = tanh(X W_xh + b_h)`, `O = H W_hq + b_q`, X the concatenated inputs of the window.

    One-hot inputs (`embed=0`): the product of concatenated one-hots with W_xh is the sum of one
    row per window position, so W_xh is stored as `context` lookup tables. Positions before the
    start of a split hold a padding id whose row is zero, so the model sees a shorter context there.
    """

    def __init__(self, vocab_size: int, hidden: int, context: int, embed: int = 0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.vocab_size, self.context, self.pad = vocab_size, context, vocab_size
        width = embed or hidden
        self.inputs = nn.Embedding(context * (vocab_size + 1), width)
        with torch.no_grad():
            self.inputs.weight.normal_(0.0, 0.01 if not embed else 1.0)
        self.project = nn.Linear(context * embed, hidden) if embed else None
        self.b_h = nn.Parameter(torch.zeros(hidden)) if not embed else None
        self.drop = nn.Dropout(dropout)
        self.decoder = nn.Linear(hidden, vocab_size)

    def initial_state(self, batch_size: int, device: torch.device | None = None) -> Tensor:
        return torch.full((batch_size, self.context - 1), self.pad, dtype=torch.long,
                          device=device)

    def forward(self, inputs: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        tokens = torch.cat([state, inputs], dim=1)
        windows = tokens.unfold(1, self.context, 1)  # (batch, steps, context), oldest first
        offsets = torch.arange(self.context, device=inputs.device) * (self.vocab_size + 1)
        rows = self.inputs(windows + offsets) * (windows != self.pad).unsqueeze(-1)
        if self.project is None:
            h = torch.tanh(rows.sum(dim=2) + self.b_h)
        else:
            h = torch.tanh(self.project(self.drop(rows.flatten(2))))
        return self.decoder(self.drop(h)), tokens[:, tokens.shape[1] - self.context + 1 :]


Network = ScratchRNN | RecurrentLM | WindowMLP  # what build_model returns


def build_model(kind: Kind, vocab_size: int, hidden: int, num_layers: int = 1,
                dropout: float = 0.0, embed: int = 0, tie_weights: bool = False,
                context: int = 8) -> Network:
    if kind == "scratch":
        return ScratchRNN(vocab_size, hidden)
    if kind == "mlp":
        return WindowMLP(vocab_size, hidden, context, embed, dropout)
    return RecurrentLM(kind, vocab_size, hidden, num_layers, dropout, embed, tie_weights)
