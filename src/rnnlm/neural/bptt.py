"""The tanh recurrence with its backpropagation-through-time gradients written out.

Autograd records the recurrence `H_t = tanh(A_t + H_{t-1} W)` (A_t: the input projection plus
biases) as a few nodes per time step and walks them back one by one; on a CPU, at the sizes this
project trains, that bookkeeping costs as much as the arithmetic. Here the forward pass is one
matrix product and one tanh per step, and the backward pass uses the chapter's BPTT equations:

    dA_t = dH_t * (1 - H_t^2)          with dH_t = dL/dH_t + dA_{t+1} W^T   (from the step after)
    dW   = sum_t H_{t-1}^T dA_t         one matrix product over all steps at once
    dH_0 = dA_1 W^T

Tensors are time-major, `(steps, batch, hidden)`, so each step is a contiguous slice.
"""

from __future__ import annotations

import torch
from torch import Tensor


class _TanhRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, projected: Tensor, h0: Tensor, w_hh: Tensor) -> Tensor:
        states = torch.empty_like(projected)
        w = w_hh.contiguous()  # a transposed view would take a slower matmul at every step
        h = h0
        for t in range(projected.shape[0]):
            torch.addmm(projected[t], h, w, out=states[t])
            h = torch.tanh_(states[t])
        ctx.save_for_backward(states, h0, w_hh)
        return states

    @staticmethod
    def backward(ctx, grad_states: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        states, h0, w_hh = ctx.saved_tensors
        grad_states = grad_states.contiguous()
        derivative = 1 - states * states  # tanh' for every step at once
        grad_a = torch.empty_like(states)
        w_t = w_hh.t().contiguous()
        grad_h = grad_states[-1]
        for t in range(states.shape[0] - 1, -1, -1):
            torch.mul(grad_h, derivative[t], out=grad_a[t])
            if t > 0:
                grad_h = torch.addmm(grad_states[t - 1], grad_a[t], w_t)
        grad_h0 = grad_a[0] @ w_t if ctx.needs_input_grad[1] else None
        grad_w = None
        if ctx.needs_input_grad[2]:
            previous = torch.cat([h0.unsqueeze(0), states[:-1]]).flatten(0, 1)
            grad_w = previous.t() @ grad_a.flatten(0, 1)
        return grad_a, grad_h0, grad_w


def tanh_recurrence(projected: Tensor, h0: Tensor, w_hh: Tensor) -> Tensor:
    """All hidden states `H_1..H_T`, `(steps, batch, hidden)`, of `H_t = tanh(A_t + H_{t-1} W)`.

    `projected` holds `A_t` (input projection and biases), `h0` is `H_0`, `w_hh` is `W` in the
    book's orientation (`hidden x hidden`, right-multiplied).
    """
    return _TanhRecurrence.apply(projected.contiguous(), h0.contiguous(), w_hh)
