"""Backpropagation explained: one weight's gradient as forward-pass term x backward-pass term.

For a weight w feeding neuron z = ... + w a + ..., dC/dw = dz/dw * dC/dz. The forward pass
gives dz/dw = a, the input to that neuron. The backward pass gives dC/dz recursively from the
output: dC/dz = sigma'(z) * sum_k w_k dC/dz_k over the neurons k that z's activation feeds.
"""

from __future__ import annotations

import numpy as np

from gradstep import nn
from gradstep.ops.activation import stable_sigmoid
from gradstep.tensor import Tensor

_DERIVATIVES = {
    nn.Sigmoid: lambda z: stable_sigmoid(z) * (1 - stable_sigmoid(z)),
    nn.ReLU: lambda z: (z > 0).astype(z.dtype),
    nn.Tanh: lambda z: 1 - np.tanh(z) ** 2,
    nn.Identity: lambda z: np.ones_like(z),
}


def _layers(model: nn.Sequential):
    """[(Linear, activation module or None), ...] for a Sequential of Linear/activation."""
    out, mods = [], list(model)
    i = 0
    while i < len(mods):
        lin = mods[i]
        if not isinstance(lin, nn.Linear):
            raise TypeError(f"explain_gradient: layer {i} is {type(lin).__name__}, expected Linear")
        act = mods[i + 1] if i + 1 < len(mods) and not isinstance(mods[i + 1], nn.Linear) else None
        if act is not None and type(act) not in _DERIVATIVES:
            raise TypeError(f"explain_gradient: activation {type(act).__name__} not supported")
        out.append((lin, act))
        i += 2 if act is not None else 1
    return out


def explain_gradient(model: nn.Sequential, x, y, parameter: str, index) -> dict:
    """Decompose dC/d(parameter[index]) for C = MSE(model(x), y) into the lecture's two passes.

    Returns the per-sample forward term dz/dw, backward term dC/dz, their summed product, and
    the engine's ``.grad`` for the same weight; raises AssertionError if they differ.
    """
    layers = _layers(model)
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64).reshape(len(x), -1)
    # forward pass: keep every layer's input a and pre-activation z
    inputs, zs, a = [], [], x
    for lin, act in layers:
        inputs.append(a)
        z = a @ lin.weight.data.T.astype(np.float64) + (
            lin.bias.data.astype(np.float64) if lin.bias is not None else 0
        )
        zs.append(z)
        a = z if act is None else act(Tensor(z, dtype=np.float64)).data
    # backward pass: dC/dz at the output, then recursively down
    dCdz = [None] * len(layers)
    dC_da = 2 * (a - y) / a.size  # MSE, mean over every element
    for k in range(len(layers) - 1, -1, -1):
        lin, act = layers[k]
        deriv = np.ones_like(zs[k]) if act is None else _DERIVATIVES[type(act)](zs[k])
        dCdz[k] = deriv * dC_da
        dC_da = dCdz[k] @ lin.weight.data.astype(np.float64)  # sum_k w_k dC/dz_k
    # the weight asked for: which layer, and is it a weight (dz/dw = a) or a bias (dz/db = 1)
    owner = {}
    for k, (lin, _) in enumerate(layers):
        owner[id(lin.weight)] = (k, True)
        if lin.bias is not None:
            owner[id(lin.bias)] = (k, False)
    params = dict(model.named_parameters())
    if parameter not in params:
        raise KeyError(f"no parameter {parameter!r}; the model has {sorted(params)}")
    layer, is_weight = owner[id(params[parameter])]
    idx = tuple(int(i) for i in np.atleast_1d(index))
    forward = inputs[layer][:, idx[1]] if is_weight else np.ones(len(x))
    backward = dCdz[layer][:, idx[0]]
    product = float(np.sum(forward * backward))
    # the engine's answer for the same weight
    model.zero_grad()
    out = model(x)
    ((out - Tensor(y, dtype=out.dtype)) ** 2).mean().backward()
    engine = float(params[parameter].grad[idx])
    rtol = 1e-8 if out.dtype == np.float64 else 1e-3
    assert abs(product - engine) <= rtol * max(abs(engine), 1e-12) + 1e-12, (
        f"backprop explanation {product!r} differs from the engine's gradient {engine!r}"
    )
    return {
        "parameter": parameter,
        "index": idx,
        "forward": forward,
        "backward": backward,
        "product": product,
        "engine": engine,
    }


def format_explanation(e: dict, rows: int = 5) -> str:
    """A plain-text table of the two passes, sample by sample."""
    lines = [
        f"dC/d{e['parameter']}{list(e['index'])} = sum over samples of "
        "(forward: dz/dw) x (backward: dC/dz)",
        f"{'sample':>6} {'dz/dw':>12} {'dC/dz':>12} {'product':>12}",
    ]
    for n in range(min(rows, len(e["forward"]))):
        f, b = e["forward"][n], e["backward"][n]
        lines.append(f"{n:>6} {f:>12.5g} {b:>12.5g} {f * b:>12.5g}")
    lines.append(f"sum of products {e['product']:.10g}   engine .grad {e['engine']:.10g}")
    return "\n".join(lines)
