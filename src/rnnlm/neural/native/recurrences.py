"""The recurrences of `rnnlm.neural.bptt` with each step's elementwise work in one compiled call.

Same equations and the same saved tensors as the PyTorch-operations versions there (whose
docstrings give the formulas). Per step, forward: one matrix product `H W_hh` (MKL, through
PyTorch) and one call into `steps.cpp`, which adds the input projection and applies the gates;
backward: one call, which adds the gradient from the loss to the product from the step after,
and one matrix product. The weight gradient is one product over all steps. Gate blocks follow
torch.nn's order. Under bf16-mixed the products run in bfloat16, as autocast runs torch.nn's
layers, while the states, the kernels' elementwise work and the gradients stay in float32
(`rnnlm.neural.products`). The kernels are called with raw addresses: every tensor they touch is
allocated here, contiguous, and outlives the call.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlm.neural.native.library import Kernels
from rnnlm.neural.products import Products


class _Steps:
    """Step t's address in a contiguous time-major tensor: `steps[t]` without building a view
    (the per-step Python work is a visible share of a step at these sizes). Holds the tensor, so
    that a temporary (a contiguous copy) lives as long as its addresses are used."""

    def __init__(self, tensor: Tensor) -> None:
        assert tensor.is_contiguous()
        self.tensor = tensor
        self.base, self.stride = tensor.data_ptr(), tensor[0].numel() * tensor.element_size()

    def __getitem__(self, t: int) -> int:
        return self.base + t * self.stride


class TanhRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, kernels: Kernels, products: Products, projected: Tensor, h0: Tensor,
                w_hh: Tensor) -> Tensor:
        batch, hidden = h0.shape
        states = torch.empty_like(projected)
        w = products.operand(w_hh)
        a, h = _Steps(projected), _Steps(states)
        previous = [h0, *states.unbind(0)]  # step t's input state; t + 1: its output
        for t in range(projected.shape[0]):
            products.mm(previous[t], w, out=previous[t + 1])
            kernels.tanh_forward(a[t], h[t], batch * hidden)
        ctx.kernels, ctx.products = kernels, products
        ctx.save_for_backward(states, h0, w_hh)
        return states

    @staticmethod
    def backward(ctx, grad_states: Tensor) -> tuple[Tensor | None, ...]:
        states, h0, w_hh = ctx.saved_tensors
        kernels: Kernels = ctx.kernels
        products: Products = ctx.products
        steps, batch, hidden = states.shape
        given, h = _Steps(grad_states.contiguous()), _Steps(states)
        grad_a = torch.empty_like(states)
        da, da_views = _Steps(grad_a), grad_a.unbind(0)
        w_t = products.operand(w_hh.t())
        after = torch.zeros_like(h0)  # the step after's dA W^T: none after the last step
        for t in range(steps - 1, -1, -1):
            kernels.tanh_backward(given[t], after.data_ptr(), h[t], da[t], batch * hidden)
            products.mm(da_views[t], w_t, out=after)
        return None, None, grad_a, after, products.weight_grad(h0, states, grad_a)


class GRURecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, kernels: Kernels, products: Products, projected: Tensor, h0: Tensor,
                w_hh: Tensor, b_hh: Tensor) -> Tensor:
        steps, (batch, hidden) = projected.shape[0], h0.shape
        w = products.operand(w_hh)
        hh = projected.new_empty(batch, 3 * hidden)  # H W_hh of the current step
        rz = projected.new_empty(steps, batch, 2 * hidden)
        n, hh_n, states = (projected.new_empty(steps, batch, hidden) for _ in range(3))
        p, r_z, n_, h_n, out = (_Steps(x) for x in (projected, rz, n, hh_n, states))
        bias = b_hh.contiguous()
        previous = [h0, *states.unbind(0)]  # step t's input state
        for t in range(steps):
            products.mm(previous[t], w, out=hh)
            kernels.gru_forward(p[t], hh.data_ptr(), bias.data_ptr(), previous[t].data_ptr(),
                                r_z[t], n_[t], h_n[t], out[t], batch, hidden)
        ctx.kernels, ctx.products = kernels, products
        ctx.save_for_backward(states, h0, w_hh, rz, n, hh_n)
        return states

    @staticmethod
    def backward(ctx, grad_states: Tensor) -> tuple[Tensor | None, ...]:
        states, h0, w_hh, rz, n, hh_n = ctx.saved_tensors
        kernels: Kernels = ctx.kernels
        products: Products = ctx.products
        steps, batch, hidden = states.shape
        grad_states = grad_states.contiguous()
        grad_hh = states.new_empty(steps, batch, 3 * hidden)
        grad_projected = torch.empty_like(grad_hh)
        carry = grad_states[-1].clone()  # dL/dH' plus, later, the part through z
        after = torch.zeros_like(h0)  # the step after's g_hh W_hh^T
        w_t = products.operand(w_hh.t())  # the parameter's own layout: no copy in float32
        previous, given = [h0, *states.unbind(0)], _Steps(grad_states)
        r_z, n_, h_n, g_hh, g_p = (_Steps(x) for x in (rz, n, hh_n, grad_hh, grad_projected))
        g_views = grad_hh.unbind(0)
        for t in range(steps - 1, -1, -1):
            kernels.gru_backward(after.data_ptr(), carry.data_ptr(),
                                 given[t - 1] if t > 0 else None, r_z[t], n_[t], h_n[t],
                                 previous[t].data_ptr(), g_hh[t], g_p[t], batch, hidden)
            products.mm(g_views[t], w_t, out=after)
        return (None, None, grad_projected, carry + after,
                products.weight_grad(h0, states, grad_hh), grad_hh.sum((0, 1)))
