"""Layers: Linear, the activations, Sequential, Dropout, and the lecture's own models."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from gradstep import autograd
from gradstep import functional as F
from gradstep.nn import init
from gradstep.nn.module import Module, Parameter
from gradstep.ops import activation as act
from gradstep.ops import linalg
from gradstep.tensor import Tensor


class Linear(Module):
    """y = x W^T + b, with W of shape (out_features, in_features) as in PyTorch.

    Weight and bias start uniform in +-1/sqrt(in_features), PyTorch's default, so a PyTorch
    ``state_dict`` (as NumPy arrays) loads directly.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=None):
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"Linear: {name} must be a positive integer, got {v!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        bound = init.linear_bound(in_features)
        # dtype=float64 gives float64 parameters (it was silently float32 before)
        w = init.uniform((out_features, in_features), bound, dtype=dtype)
        self.weight = Parameter(w, dtype=dtype)
        b = init.uniform((out_features,), bound, dtype=dtype) if bias else None
        self.bias = Parameter(b, dtype=dtype) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return linalg.Linear.apply(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class Activation(Module):
    """An elementwise activation. ``inplace`` is PyTorch's memory option, taken so
    ``nn.ReLU(inplace=True)`` works, and without effect: the ops make new arrays (the values
    are the same)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = bool(inplace)


class Sigmoid(Module):
    """sigma(x) = 1 / (1 + e^-x), elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return act.Sigmoid.apply(x)


class ReLU(Activation):
    """max(x, 0), elementwise (the Rectified Linear Unit)."""

    def forward(self, x: Tensor) -> Tensor:
        return act.ReLU.apply(x)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return act.Tanh.apply(x)


class Softplus(Module):
    """log(1 + e^(beta x)) / beta; x itself where beta x > threshold (as PyTorch)."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, x: Tensor) -> Tensor:
        if self.beta == 1 and self.threshold >= 20:
            return act.Softplus.apply(x)
        return F.softplus(x, self.beta, self.threshold)


class LeakyReLU(Activation):
    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__(inplace)
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        return act.LeakyReLU.apply(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Identity(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x


class Flatten(Module):
    """Flatten every dimension after the first (the batch)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1)


class Dropout(Module):
    """Zero each element with probability p while training; identity in eval()."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        self.inplace = bool(inplace)  # taken for PyTorch code; see Activation
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Sequential(Module):
    """Modules applied one after the other; children are named "0", "1", ... as in PyTorch."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            items = list(modules[0].items())
        else:
            items = [(str(i), m) for i, m in enumerate(modules)]
        for name, m in items:
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: item {name} is a {type(m).__name__}, not a Module")
            setattr(self, name, m)

    def forward(self, x: Tensor) -> Tensor:
        tracer = autograd._tracer  # a compiled step depends on each child's train()/eval()
        for m in self._modules.values():
            if tracer is not None:
                tracer.record_module(m)
            x = m.forward(x)
        return x

    def __getitem__(self, i):
        """The i-th module; a slice gives a Sequential of those modules (as PyTorch)."""
        if isinstance(i, slice):
            return Sequential(OrderedDict(list(self._modules.items())[i]))
        return list(self._modules.values())[i]

    def __setitem__(self, i: int, module: Module) -> None:
        """``model[1] = nn.Tanh()``: replace the i-th module in its place."""
        if not isinstance(module, Module):
            raise TypeError(f"Sequential: item {i} must be a Module, got {type(module).__name__}")
        setattr(self, list(self._modules)[i], module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class SigmoidSum(Sequential):
    """The lecture's flexible model: y = b + sum_i c_i sigmoid(b_i + sum_j w_ij x_j).

    ``0`` is the Linear holding w_ij and b_i (n_sigmoids x in_features), ``2`` the Linear
    holding c_i and b. With enough sigmoids it approximates any piecewise-linear curve.
    """

    def __init__(self, in_features: int, n_sigmoids: int):
        super().__init__(Linear(in_features, n_sigmoids), Sigmoid(), Linear(n_sigmoids, 1))


class ReLUSum(Sequential):
    """The same with ReLUs: y = b + sum_i c_i max(0, b_i + sum_j w_ij x_j).

    Two ReLUs make one hard sigmoid, so n ReLUs match n/2 sigmoids.
    """

    def __init__(self, in_features: int, n_relus: int):
        super().__init__(Linear(in_features, n_relus), ReLU(), Linear(n_relus, 1))


def mlp(in_features: int, hidden: list[int], out_features: int, activation: str = "relu"):
    """A Sequential of Linear layers with ``activation`` between them ("relu", "sigmoid",
    "tanh", "leaky_relu"): the lecture's "more layers of neurons"."""
    acts = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh, "leaky_relu": LeakyReLU}
    if activation not in acts:
        raise ValueError(f"activation must be one of {sorted(acts)}, got {activation!r}")
    layers: list[Module] = []
    width = in_features
    for h in hidden:
        layers += [Linear(width, h), acts[activation]()]
        width = h
    layers.append(Linear(width, out_features))
    return Sequential(*layers)
