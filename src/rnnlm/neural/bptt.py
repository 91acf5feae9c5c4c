"""The recurrences of the tanh RNN and the GRU with their backpropagation through time written out.

Autograd records a recurrence such as `H_t = tanh(A_t + H_{t-1} W)` (A_t: the input projection
plus biases) as a few nodes per time step and walks them back one by one; on a CPU, at the sizes
this project trains, that bookkeeping costs as much as the arithmetic. Here the forward pass is
one matrix product and a few elementwise operations per step, and the backward pass uses the
chapter's BPTT equations, for the tanh RNN:

    dA_t = dH_t * (1 - H_t^2)          with dH_t = dL/dH_t + dA_{t+1} W^T   (from the step after)
    dW   = sum_t H_{t-1}^T dA_t         one matrix product over all steps at once
    dH_0 = dA_1 W^T

and the same chain through the gates for the GRU. Tensors are time-major,
`(steps, batch, hidden)`, so each step is a contiguous slice.

The public functions run the compiled step kernels (`rnnlm.neural.native`) where they are built
and apply (CPU, float32 or float64), else the PyTorch-operations Functions of this module: the same
equations, the same results to rounding (tested), slower. Inside a CPU autocast region
(bf16-mixed) both keep float32 states and run their matrix products in bfloat16 (`products`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlm.neural.native import library, recurrences
from rnnlm.neural.native.library import Kernels
from rnnlm.neural.products import Products


class _TanhRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, products: Products, projected: Tensor, h0: Tensor, w_hh: Tensor) -> Tensor:
        states = torch.empty_like(projected)
        w = products.operand(w_hh)
        h = h0
        for t in range(projected.shape[0]):
            products.addmm(projected[t], h, w, out=states[t])
            h = torch.tanh_(states[t])
        ctx.products = products
        ctx.save_for_backward(states, h0, w_hh)
        return states

    @staticmethod
    def backward(ctx, grad_states: Tensor) -> tuple[Tensor | None, ...]:
        states, h0, w_hh = ctx.saved_tensors
        products: Products = ctx.products
        grad_states = grad_states.contiguous()
        derivative = 1 - states * states  # tanh' for every step at once
        grad_a = torch.empty_like(states)
        w_t = products.operand(w_hh.t())
        grad_h = grad_states[-1]
        for t in range(states.shape[0] - 1, -1, -1):
            torch.mul(grad_h, derivative[t], out=grad_a[t])
            if t > 0:
                grad_h = products.addmm(grad_states[t - 1], grad_a[t], w_t)
        grad_h0 = None
        if ctx.needs_input_grad[2]:
            grad_h0 = torch.empty_like(h0)
            products.mm(grad_a[0], w_t, out=grad_h0)
        grad_w = products.weight_grad(h0, states, grad_a) if ctx.needs_input_grad[3] else None
        return None, grad_a, grad_h0, grad_w


class _GRURecurrence(torch.autograd.Function):
    """nn.GRU's recurrence (gates r, z, n in its order) over pre-computed input projections.

        r, z = sigmoid(A_r + H W_r + b_r), sigmoid(A_z + H W_z + b_z)
        n    = tanh(A_n + r * (H W_n + b_n))
        H'   = (1 - z) * n + z * H

    Forward: one product and four elementwise kernels per step. Backward: every factor that does
    not depend on the incoming gradient is computed for all steps at once, leaving per step four
    products of that gradient with them and one matrix product.
    """

    @staticmethod
    def forward(ctx, products: Products, projected: Tensor, h0: Tensor, w_hh: Tensor,
                b_hh: Tensor) -> Tensor:
        steps, hidden = projected.shape[0], h0.shape[-1]
        w = products.operand(w_hh)  # (hidden, 3 hidden), right-multiplied
        hh = projected.new_empty(projected.shape)  # H W + b for every step
        rz = projected.new_empty(*projected.shape[:2], 2 * hidden)
        n = projected.new_empty(*projected.shape[:2], hidden)
        states = torch.empty_like(n)
        h = h0
        for t in range(steps):
            products.addmm(b_hh, h, w, out=hh[t])
            torch.add(projected[t, :, : 2 * hidden], hh[t, :, : 2 * hidden], out=rz[t]).sigmoid_()
            torch.addcmul(projected[t, :, 2 * hidden :], rz[t, :, :hidden], hh[t, :, 2 * hidden :],
                          out=n[t]).tanh_()
            h = torch.lerp(n[t], h, rz[t, :, hidden:], out=states[t])
        ctx.products = products
        ctx.save_for_backward(states, h0, w_hh, rz, n, hh[..., 2 * hidden :])
        return states

    @staticmethod
    def backward(ctx, grad_states: Tensor) -> tuple[Tensor | None, ...]:
        states, h0, w_hh, rz, n, hh_n = ctx.saved_tensors
        products: Products = ctx.products
        hidden = h0.shape[-1]
        grad_states = grad_states.contiguous()
        previous = torch.cat([h0.unsqueeze(0), states[:-1]])
        r, z = rz[..., :hidden], rz[..., hidden:]
        # dL/dA_n = dH' * (1 - z)(1 - n^2); dA_r = dA_n * (H W_n + b_n) r(1 - r);
        # dA_z = dH' * (H - n) z(1 - z); the gradient into H W_n + b_n is dA_n * r.
        to_n = (1 - z) * (1 - n * n)
        to_r = hh_n * r * (1 - r)
        to_z = (previous - n) * z * (1 - z)
        grad_hh = rz.new_empty(*rz.shape[:2], 3 * hidden)
        grad_a_n = torch.empty_like(n)
        w_t = products.operand(w_hh.t())
        grad_h = grad_states[-1]
        for t in range(states.shape[0] - 1, -1, -1):
            torch.mul(grad_h, to_n[t], out=grad_a_n[t])
            torch.mul(grad_a_n[t], to_r[t], out=grad_hh[t, :, :hidden])
            torch.mul(grad_h, to_z[t], out=grad_hh[t, :, hidden : 2 * hidden])
            torch.mul(grad_a_n[t], r[t], out=grad_hh[t, :, 2 * hidden :])
            carried = grad_states[t - 1] if t > 0 else torch.zeros_like(grad_h)
            through_z = torch.addcmul(carried, grad_h, z[t])
            grad_h = products.addmm(through_z, grad_hh[t], w_t, out=through_z)
        grad_projected = torch.cat([grad_hh[..., : 2 * hidden], grad_a_n], dim=-1)
        grad_w = products.weight_grad(h0, states, grad_hh) if ctx.needs_input_grad[3] else None
        grad_b = grad_hh.sum((0, 1)) if ctx.needs_input_grad[4] else None
        return None, grad_projected, grad_h, grad_w, grad_b


def _kernels(*tensors: Tensor) -> Kernels | None:
    """The compiled step kernels where they apply: CPU tensors of float32 or float64."""
    first = tensors[0]
    if first.device.type != "cpu" or any(t.dtype != first.dtype for t in tensors):
        return None
    suffix = {torch.float32: "f32", torch.float64: "f64"}.get(first.dtype)
    return library.kernels(suffix) if suffix else None


def _in_weight_dtype(weight: Tensor, *tensors: Tensor) -> list[Tensor]:
    """Contiguous, and under autocast back in the weight's dtype: autocast hands the input
    projection over in bfloat16, the recurrence keeps its states in float32."""
    return [t.to(weight.dtype).contiguous() for t in tensors]


def tanh_recurrence(projected: Tensor, h0: Tensor, w_hh: Tensor) -> Tensor:
    """All hidden states `H_1..H_T`, `(steps, batch, hidden)`, of `H_t = tanh(A_t + H_{t-1} W)`.

    `projected` holds `A_t` (input projection and biases), `h0` is `H_0`, `w_hh` is `W` in the
    book's orientation (`hidden x hidden`, right-multiplied).
    """
    products = Products.under_autocast()
    projected, h0 = _in_weight_dtype(w_hh, projected, h0)
    kernels = _kernels(projected, h0, w_hh)
    with torch.autocast("cpu", enabled=False):  # the Functions choose their products' dtype
        if kernels is not None:
            return recurrences.TanhRecurrence.apply(kernels, products, projected, h0, w_hh)
        return _TanhRecurrence.apply(products, projected, h0, w_hh)


def gru_recurrence(projected: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor) -> Tensor:
    """All hidden states `(steps, batch, hidden)` of nn.GRU's recurrence. `projected` holds
    `X W_ih^T + b_ih` for every step, `w_hh` is `W_hh^T` (`hidden x 3 hidden`), `b_hh` nn.GRU's."""
    products = Products.under_autocast()
    projected, h0 = _in_weight_dtype(w_hh, projected, h0)
    kernels = _kernels(projected, h0, w_hh, b_hh)
    with torch.autocast("cpu", enabled=False):
        if kernels is not None:
            return recurrences.GRURecurrence.apply(kernels, products, projected, h0, w_hh, b_hh)
        return _GRURecurrence.apply(products, projected, h0, w_hh, b_hh)
