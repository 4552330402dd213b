"""The exact Hessian of a network's loss, Hessian-vector products and the extreme eigenvalues.

How it is exact (float64, ReLU networks included): a Hessian-vector product H v is the
derivative of the gradient along v, d/dt g(theta + t v) at t = 0. The gradient is the engine's
own (exact, by backpropagation); the derivative along t is taken by the five-point stencil
(8 (g(e) - g(-e)) - (g(2e) - g(-2e))) / 12e, which is exact for polynomials of degree <= 4.

A finite difference of gradients is wrong where a step crosses a ReLU's kink (the gradient jumps
there). So the kinks are *frozen*: the network is copied, each ``nn.ReLU`` / ``nn.LeakyReLU``
module of the copy records which units are active at theta, and every shifted evaluation reuses
that pattern (y = x * mask, the mask a constant). This is exactly what a second-order pass of
PyTorch's autograd differentiates (ReLU' is the mask, ReLU'' = 0), whatever the step. With the
pattern fixed, a ReLU network's loss is a polynomial in t: for one hidden layer and the MSE
(the course's HW2-2 network) the gradient is cubic in t and the stencil is exact up to rounding;
deeper networks and smooth activations (sigmoid, tanh) leave an O(e^4) term, about 1e-13 here.

An activation that is not a module (``F.relu`` called inside ``forward``), or any other op with
a kink (abs, clamp, max, the L1 and Huber losses), cannot be frozen: such a model is refused
with a message naming the op, rather than given a wrong Hessian.
"""

from __future__ import annotations

import copy

import numpy as np

from gradstep import nn
from gradstep.autograd import no_grad
from gradstep.tensor import Tensor

#: Ops whose gradient jumps; a Hessian through them needs the frozen modules above.
_KINK_OPS = {"ReLU", "LeakyReLU", "Abs", "Clip", "Max", "Min", "L1", "Huber"}
STEP = 1e-3  # the stencil's e, for a direction of unit max-norm


class _FrozenKink(nn.Module):
    """A ReLU or LeakyReLU whose pattern of active units is recorded once, then reused."""

    def __init__(self, slope: float):
        super().__init__()
        self.slope, self.scales, self.calls = slope, None, 0

    def forward(self, x: Tensor) -> Tensor:
        if self.scales is None or len(self.scales) <= self.calls:  # recording (at theta)
            scale = np.where(x.data > 0, 1.0, self.slope).astype(x.dtype)
            self.scales = [*(self.scales or []), scale]
        scale = self.scales[self.calls]
        self.calls += 1
        return x * Tensor(scale, dtype=scale.dtype)


def _freeze(model: nn.Module) -> list[_FrozenKink]:
    frozen = []
    for m in list(model.modules()):
        for name, child in list(m._modules.items()):
            if type(child) in (nn.ReLU, nn.LeakyReLU):
                slope = getattr(child, "negative_slope", 0.0)
                k = _FrozenKink(float(slope))
                setattr(m, name, k)
                frozen.append(k)
    return frozen


def _kink_ops(loss: Tensor) -> list[str]:
    """The names of kinked ops in the graph that made ``loss``."""
    found, seen, stack = [], set(), [loss]
    while stack:
        t = stack.pop()
        node = getattr(t, "_node", None)
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if type(node).__name__ in _KINK_OPS:
            found.append(type(node).__name__)
        stack.extend(i for i in (node.inputs or ()) if isinstance(i, Tensor))
    return sorted(set(found))


class LossFunction:
    """The loss of a float64 copy of ``model`` on (X, y) as a function of one flat parameter
    vector, in the order of ``model.parameters()``; its kinks frozen at the model's weights."""

    def __init__(self, model: nn.Module, loss_fn, X, y, freeze: bool = True):
        self.model = copy.deepcopy(model).double()
        self.frozen = _freeze(self.model) if freeze else []
        self.params = list(self.model.parameters())
        self.shapes = [p.shape for p in self.params]
        self.sizes = [p.size for p in self.params]
        self.theta = np.concatenate([p.data.ravel() for p in self.params]) if self.params else None
        if self.theta is None:
            raise ValueError("the model has no parameters")
        self.loss_fn = loss_fn
        self.X = Tensor(np.asarray(X, np.float64), dtype=np.float64)
        y = np.asarray(y)
        self.y = Tensor(y, dtype=np.float64) if y.dtype.kind == "f" else Tensor(y)
        kinks = _kink_ops(self.move_to(self.theta))
        if kinks and freeze:
            raise ValueError(
                f"the loss goes through {', '.join(kinks)} outside an nn.ReLU/nn.LeakyReLU "
                "module; its gradient jumps there, so no exact Hessian can be taken (use "
                "activation modules, and the MSE, cross-entropy or BCE loss)"
            )

    def move_to(self, theta) -> Tensor:
        """Make ``theta`` the point the Hessian is taken at: record its pattern of active
        units (the kinks frozen from now on); returns the loss there."""
        self.theta = np.array(theta, np.float64).ravel()
        for k in self.frozen:
            k.scales = None
        return self._loss(self.theta)

    def write_back(self, model: nn.Module) -> None:
        """Copy theta into ``model``'s parameters (in their own dtype)."""
        start = 0
        for p, n in zip(model.parameters(), self.sizes):
            p.data = self.theta[start : start + n].reshape(p.shape).astype(p.dtype)
            start += n

    @property
    def size(self) -> int:
        return self.theta.size

    def _set(self, theta: np.ndarray) -> None:
        start = 0
        for p, shape, n in zip(self.params, self.shapes, self.sizes):
            p.data = theta[start : start + n].reshape(shape).copy()
            p._grad = None
            start += n

    def _loss(self, theta) -> Tensor:
        self._set(theta)
        for k in self.frozen:
            k.calls = 0
        return self.loss_fn(self.model(self.X), self.y)

    def value(self, theta=None) -> float:
        with no_grad():
            return float(self._loss(self.theta if theta is None else theta).data)

    def grad(self, theta=None) -> np.ndarray:
        """The exact gradient (backpropagation) at ``theta`` (default: the model's weights)."""
        loss = self._loss(self.theta if theta is None else theta)
        loss.backward()
        return np.concatenate(
            [
                (p._grad if p._grad is not None else np.zeros(shape)).ravel()
                for p, shape in zip(self.params, self.shapes)
            ]
        )

    def hvp(self, v) -> np.ndarray:
        """H v at the model's weights: the five-point stencil of exact gradients along v."""
        v = np.asarray(v, np.float64).ravel()
        if v.shape != self.theta.shape:
            raise ValueError(f"v must have {self.size} entries (the parameters), got {v.size}")
        scale = float(np.max(np.abs(v)))
        if scale == 0:
            return np.zeros_like(v)
        e = STEP / scale
        g = {k: self.grad(self.theta + k * e * v) for k in (-2, -1, 1, 2)}
        return (8 * (g[1] - g[-1]) - (g[2] - g[-2])) / (12 * e)

    def hessian(self) -> np.ndarray:
        """The full Hessian, column by column, symmetrised (rounding leaves ~1e-13 asymmetry)."""
        eye = np.eye(self.size)
        h = np.stack([self.hvp(eye[i]) for i in range(self.size)], axis=1)
        return (h + h.T) / 2


def model_hessian(model, loss_fn, X, y) -> np.ndarray:
    """The exact Hessian of ``loss_fn(model(X), y)`` with respect to every parameter.

    Parameters are flattened in the order of ``model.parameters()``; the result is float64, of
    shape (P, P). Correct on ReLU, LeakyReLU, sigmoid and tanh networks (see the module's
    docstring for how the kinks are handled); the model itself is not changed.
    """
    return LossFunction(model, loss_fn, X, y).hessian()


def hvp(model, loss_fn, X, y, v) -> np.ndarray:
    """The Hessian-vector product H v (float64, shape (P,)) without forming H."""
    return LossFunction(model, loss_fn, X, y).hvp(v)


def extreme_eigenvalues(f: LossFunction, k: int = 6, seed: int = 0) -> dict:
    """The ``k`` largest and ``k`` smallest eigenvalues of the Hessian by Lanczos iteration
    (``scipy.sparse.linalg.eigsh`` on Hessian-vector products), with their eigenvectors."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    op = LinearOperator((f.size, f.size), matvec=f.hvp, dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(f.size)
    k = min(k, f.size - 1)
    top, top_v = eigsh(op, k=k, which="LA", v0=v0)
    low, low_v = eigsh(op, k=k, which="SA", v0=v0)
    return {
        "largest": top[::-1],
        "largest_vectors": top_v[:, ::-1],
        "smallest": low,
        "smallest_vectors": low_v,
    }
