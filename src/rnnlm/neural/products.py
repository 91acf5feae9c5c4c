"""The matrix products of the written-out recurrences, in the precision the training asks for.

Under `train.precision: bf16-mixed` on a CPU, autocast runs torch.nn's layers with their products
in bfloat16 and everything else in float32. The recurrences of `bptt` and `native` are autograd
Functions, which autocast does not enter, so they do the same by hand: the weight is converted
once per pass, each step's state once per step, and each product's result is written back into
the float32 buffer the elementwise step reads. On this project's AVX-512 BF16 CPU, one thread, a
step's product (32 x 256 by 256 x 256, x 768, x 1024) ran 1.3, 1.7 and 1.9 times as fast in
bfloat16; the conversions cost about 3 to 4 us each (docs/performance.md for whole trainings).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Products:
    """Products in the tensors' own dtype (`low` None) or in `low` with results in theirs."""

    low: torch.dtype | None = None

    @staticmethod
    def under_autocast() -> Products:
        """The products a recurrence called now should use: in autocast's dtype inside a CPU
        autocast region (bf16-mixed), else in the tensors' own."""
        if torch.is_autocast_enabled("cpu"):
            return Products(torch.get_autocast_dtype("cpu"))
        return Products()

    def operand(self, weight: Tensor) -> Tensor:
        """A right-hand factor used at every step, in the products' dtype, contiguous (a
        transposed view would take a slower product at every step)."""
        return weight.contiguous() if self.low is None else weight.to(self.low).contiguous()

    def mm(self, state: Tensor, operand: Tensor, out: Tensor) -> None:
        """`out = state @ operand`, `operand` from `self.operand`."""
        if self.low is None:
            torch.mm(state, operand, out=out)
        else:
            out.copy_(torch.mm(state.to(self.low), operand))

    def addmm(self, addend: Tensor, state: Tensor, operand: Tensor,
              out: Tensor | None = None) -> Tensor:
        """`addend + state @ operand` (into `out` if given), `operand` from `self.operand`."""
        if self.low is None:
            return torch.addmm(addend, state, operand, out=out)
        return torch.add(addend, torch.mm(state.to(self.low), operand), out=out)

    def weight_grad(self, h0: Tensor, states: Tensor, grad: Tensor) -> Tensor:
        """`sum_t H_{t-1}^T grad_t` with H_0 = h0, without concatenating the states; in the
        dtype of `states`."""
        if self.low is not None:
            return self._weight_grad(h0.to(self.low), states.to(self.low),
                                     grad.to(self.low)).to(states.dtype)
        return self._weight_grad(h0, states, grad)

    @staticmethod
    def _weight_grad(h0: Tensor, states: Tensor, grad: Tensor) -> Tensor:
        return torch.addmm(h0.t() @ grad[0], states[:-1].flatten(0, 1).t(),
                           grad[1:].flatten(0, 1))
