"""More activations as modules, PyTorch's names and arguments; each calls the functional of the
same name (``gradstep.functional``), so module, function and method agree."""

from __future__ import annotations

from gradstep import functional as F
from gradstep.nn.layers import Activation
from gradstep.nn.module import Module
from gradstep.tensor import Tensor


class SiLU(Activation):
    """x * sigmoid(x)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.silu(x)


class ELU(Activation):
    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__(inplace)
        self.alpha = alpha

    def forward(self, x: Tensor) -> Tensor:
        return F.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class SELU(Activation):
    def forward(self, x: Tensor) -> Tensor:
        return F.selu(x)


class GELU(Module):
    """PyTorch's GELU: exact (x Phi(x)) by default, or its tanh form (``approximate="tanh"``)."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate is 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x, self.approximate)


class Hardtanh(Activation):
    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        super().__init__(inplace)
        self.min_val, self.max_val = min_val, max_val

    def forward(self, x: Tensor) -> Tensor:
        return F.hardtanh(x, self.min_val, self.max_val)


class ReLU6(Activation):
    def forward(self, x: Tensor) -> Tensor:
        return F.relu6(x)


class LogSigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.logsigmoid(x)


class Softmax(Module):
    """F.softmax along ``dim`` (PyTorch asks for it; None means the last, with no warning)."""

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, dim=-1 if self.dim is None else self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """F.log_softmax along ``dim``."""

    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(x, dim=-1 if self.dim is None else self.dim)
