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


def _passes(layers, x: np.ndarray, y: np.ndarray):
    """The two passes by hand, in float64: every layer's input a, pre-activation z and dC/dz
    for C = MSE (mean over every element of the output)."""
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
    return inputs, zs, dCdz


def explain_gradient(model: nn.Sequential, x, y, parameter: str, index) -> dict:
    """Decompose dC/d(parameter[index]) for C = MSE(model(x), y) into the lecture's two passes.

    Returns the per-sample forward term dz/dw, backward term dC/dz, their summed product, and
    the engine's ``.grad`` for the same weight; raises AssertionError if they differ.
    """
    layers = _layers(model)
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64).reshape(len(x), -1)
    inputs, _, dCdz = _passes(layers, x, y)
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


# --- the lab's /backprop panel: a small seeded network, drawn, and any weight explained -------

#: The panel's network: 2 inputs -> 3 -> 2 -> 1 output, in float64.
PANEL_WIDTHS = (2, 3, 2, 1)
PANEL_ACTIVATIONS = ("sigmoid", "relu", "tanh")
#: The panel's fixed data set: six (x1, x2) -> y samples (XOR's four corners and two more), so
#: every sample's term can be shown in one table.
PANEL_X = np.array(
    [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.5, -1.0], [-1.0, 0.5]], np.float64
)
PANEL_Y = np.array([0.0, 1.0, 1.0, 0.0, 0.5, -0.5], np.float64)
#: Past this size a weight has diverged (and float64 overflows a few steps later).
PANEL_MAX_WEIGHT = 1e6
_SYMBOLS = {"sigmoid": "σ", "relu": "ReLU", "tanh": "tanh"}


def panel_network(activation: str = "sigmoid", seed: int = 0, steps=()) -> nn.Sequential:
    """The panel's float64 ``nn.mlp(2, [3, 2], 1, activation)``, weights and biases drawn from
    N(0, 1) by ``numpy.random.default_rng(seed)``, then one full-batch gradient-descent step on
    ``PANEL_X, PANEL_Y`` for each learning rate in ``steps``. Raises ``ValueError`` when a
    step takes a weight past ``PANEL_MAX_WEIGHT`` (the steps diverged).

    The values come from a generator of its own, not gradstep's global one, so they never
    depend on what another panel has seeded or drawn meanwhile.
    """
    import gradstep as gs

    if activation not in PANEL_ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(PANEL_ACTIVATIONS)}")
    with gs.default_dtype(np.float64):
        model = nn.mlp(PANEL_WIDTHS[0], list(PANEL_WIDTHS[1:-1]), PANEL_WIDTHS[-1], activation)
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data[...] = rng.standard_normal(p.shape)
    for k, lr in enumerate(steps, 1):
        # a rate too large overflows within a few steps: stop there with a message instead
        with np.errstate(over="ignore", invalid="ignore"):
            gradient_step(model, PANEL_X, PANEL_Y, lr)
        if not all(np.all(np.abs(p.data) <= PANEL_MAX_WEIGHT) for p in model.parameters()):
            raise ValueError(
                f"the network diverged at step {k} (learning rate {lr:g}): a weight passed "
                f"{PANEL_MAX_WEIGHT:g}; take smaller steps"
            )
    return model


def mse_loss(model: nn.Sequential, x, y) -> float:
    """C = MSE(model(x), y), the cost whose gradient the panel explains."""
    out = model(Tensor(np.asarray(x, np.float64), dtype=np.float64))
    y = np.asarray(y, np.float64).reshape(out.shape)
    return float(((out - Tensor(y, dtype=np.float64)) ** 2).mean().item())


def gradient_step(model: nn.Sequential, x, y, lr: float) -> float:
    """One full-batch step w <- w - lr dC/dw for every parameter, with the engine's ``.grad``;
    returns C before the step."""
    model.zero_grad()
    out = model(Tensor(np.asarray(x, np.float64), dtype=np.float64))
    y = np.asarray(y, np.float64).reshape(out.shape)
    loss = ((out - Tensor(y, dtype=np.float64)) ** 2).mean()
    loss.backward()
    for p in model.parameters():
        p.data[...] = p.data - lr * p.grad
    return float(loss.item())


def _linears(model: nn.Sequential) -> list[tuple[str, nn.Linear]]:
    """[(the Linear's name in the Sequential, the Linear), ...]: its parameters are
    ``f"{name}.weight"`` and ``f"{name}.bias"``."""
    return [(str(i), m) for i, m in enumerate(model) if isinstance(m, nn.Linear)]


def network_layout(model: nn.Sequential) -> dict:
    """What a page needs to draw ``model``: the width of each layer of neurons (inputs first),
    and every weight and bias with its layer k (the k-th Linear, joining neuron layer k to
    k + 1), its dotted parameter name, its index in that parameter and its value."""
    linears = _linears(model)
    widths = [linears[0][1].in_features] + [lin.out_features for _, lin in linears]
    weights, biases = [], []
    for k, (name, lin) in enumerate(linears):
        w = lin.weight.data
        for out in range(lin.out_features):
            for inp in range(lin.in_features):
                weights.append(
                    {
                        "id": f"weight-{k}-{out}-{inp}",
                        "layer": k,
                        "out": out,
                        "in": inp,
                        "parameter": f"{name}.weight",
                        "index": [out, inp],
                        "value": float(w[out, inp]),
                    }
                )
            if lin.bias is not None:
                biases.append(
                    {
                        "id": f"bias-{k}-{out}",
                        "layer": k,
                        "out": out,
                        "parameter": f"{name}.bias",
                        "index": [out],
                        "value": float(lin.bias.data[out]),
                    }
                )
    return {"widths": widths, "weights": weights, "biases": biases}


def parameter_shapes(model: nn.Sequential) -> dict[str, tuple[int, ...]]:
    """Every parameter's dotted name and shape (what a request may ask to explain)."""
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def _which_linear(model: nn.Sequential, parameter: str) -> int:
    names = [name for name, _ in _linears(model)]
    return names.index(parameter.split(".")[0])


def backward_route(model: nn.Sequential, parameter: str, index) -> dict:
    """Which neurons and weights the backward term dC/dz of ``parameter[index]`` came through.

    The weight feeds neuron ``out`` of neuron layer k + 1 (k: its Linear). Its dC/dz is that
    neuron's, which the backward pass built from the output down: from every neuron of the
    later layers, through the weights leaving the neuron and every weight after them.
    Neurons are ``neuron-{layer}-{i}`` with layer 0 the inputs.
    """
    linears = _linears(model)
    k, out = _which_linear(model, parameter), int(np.atleast_1d(index)[0])
    neurons = [f"neuron-{k + 1}-{out}"]
    weights = []
    for later in range(k + 1, len(linears)):
        lin = linears[later][1]
        neurons += [f"neuron-{later + 1}-{j}" for j in range(lin.out_features)]
        sources = [out] if later == k + 1 else range(lin.in_features)
        weights += [f"weight-{later}-{j}-{i}" for j in range(lin.out_features) for i in sources]
    return {"neurons": neurons, "weights": weights}


def _recursion(model: nn.Sequential, activation: str, k: int, out: int, dCdz) -> dict:
    """The last step of the backward pass for neuron ``out`` of neuron layer k + 1:
    dC/dz = act'(z) * sum_j w_j dC/dz_j over the neurons j of the next layer (or, at the
    output, dC/dz = 2 (y_hat - y) / N)."""
    linears = _linears(model)
    if k == len(linears) - 1:
        return {"output": True, "rule": "dC/dz = 2 (ŷ − y) / N at the output (C = MSE)"}
    nxt = linears[k + 1][1]
    terms = [
        {
            "neuron": f"neuron-{k + 2}-{j}",
            "weight_id": f"weight-{k + 1}-{j}-{out}",
            "weight": float(nxt.weight.data[j, out]),
            "backward": dCdz[k + 1][:, j].tolist(),
        }
        for j in range(nxt.out_features)
    ]
    act = _SYMBOLS.get(activation, activation)
    fed = "the neuron" if len(terms) == 1 else f"the {len(terms)} neurons"
    rule = f"dC/dz = {act}′(z) × Σ_j w_j · dC/dz_j over {fed} it feeds"
    return {"output": False, "rule": rule, "terms": terms}


def explain_for_panel(model: nn.Sequential, activation: str, x, y, parameter: str, index) -> dict:
    """``explain_gradient`` for ``parameter[index]`` as plain JSON-able numbers, with the route
    of its backward term and the backward pass's last step for its neuron.

    Raises ``KeyError`` for an unknown parameter and ``IndexError`` for an index outside it.
    """
    shapes = parameter_shapes(model)
    if parameter not in shapes:
        raise KeyError(f"no parameter {parameter!r}; the network has {', '.join(shapes)}")
    idx = tuple(int(i) for i in np.atleast_1d(index))
    shape = shapes[parameter]
    if len(idx) != len(shape) or any(not 0 <= i < n for i, n in zip(idx, shape)):
        raise IndexError(f"index {list(idx)} is outside {parameter} of shape {list(shape)}")
    e = explain_gradient(model, x, y, parameter, idx)
    x64 = np.asarray(x, np.float64)
    y64 = np.asarray(y, np.float64).reshape(len(x64), -1)
    _, _, dCdz = _passes(_layers(model), x64, y64)
    k = _which_linear(model, parameter)
    return {
        "parameter": parameter,
        "index": list(idx),
        "is_weight": parameter.endswith(".weight"),
        "layer": k,
        "forward": e["forward"].tolist(),
        "backward": e["backward"].tolist(),
        "products": (e["forward"] * e["backward"]).tolist(),
        "sum": e["product"],
        "engine": e["engine"],
        "route": backward_route(model, parameter, idx),
        "recursion": _recursion(model, activation, k, idx[0], dCdz),
    }
