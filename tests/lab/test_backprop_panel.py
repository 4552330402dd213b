"""The /backprop panel's library: the seeded network, its layout, gradient-descent steps and each
weight's explained gradient, checked against PyTorch in float64 (an independent engine)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gradstep as gs
from gradstep.lab import backprop as bp

X, Y = bp.PANEL_X, bp.PANEL_Y
TORCH_ACT = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh}


def _torch_passes(model, activation: str):
    """PyTorch's forward and backward pass through the same weights: every Linear's input a,
    every pre-activation z with its dC/dz (retain_grad), C, and every parameter's gradient."""
    params = {
        n: torch.tensor(p.data, dtype=torch.float64, requires_grad=True)
        for n, p in model.named_parameters()
    }
    names = [n.split(".")[0] for n in params if n.endswith(".weight")]
    a, inputs, zs = torch.tensor(X), [], []
    for k, name in enumerate(names):
        inputs.append(a)
        z = a @ params[f"{name}.weight"].T + params[f"{name}.bias"]
        z.retain_grad()
        zs.append(z)
        a = z if k == len(names) - 1 else TORCH_ACT[activation](z)
    loss = ((a - torch.tensor(Y).reshape(-1, 1)) ** 2).mean()
    loss.backward()
    grads = {n: p.grad.numpy() for n, p in params.items()}
    return inputs, zs, loss.item(), grads


def _every_parameter(model):
    for name, p in model.named_parameters():
        for index in np.ndindex(p.shape):
            yield name, index


@pytest.mark.parametrize("activation", bp.PANEL_ACTIVATIONS)
def test_every_weight_and_bias_is_explained_as_pytorch_computes_it(activation):
    model = bp.panel_network(activation, seed=3)
    inputs, zs, _, grads = _torch_passes(model, activation)
    linears = [n for n, _ in model.named_parameters() if n.endswith(".weight")]
    count = 0
    for name, index in _every_parameter(model):
        e = bp.explain_for_panel(model, activation, X, Y, name, index)
        k = linears.index(name.split(".")[0] + ".weight")
        forward = (
            inputs[k][:, index[1]].detach().numpy() if name.endswith("weight") else np.ones(len(X))
        )
        np.testing.assert_allclose(e["forward"], forward, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(e["backward"], zs[k].grad[:, index[0]].numpy(), atol=1e-15)
        np.testing.assert_array_equal(e["products"], np.multiply(e["forward"], e["backward"]))
        assert e["sum"] == pytest.approx(grads[name][index], abs=1e-12)
        assert e["engine"] == pytest.approx(grads[name][index], abs=1e-12)
        assert e["layer"] == k and e["is_weight"] == name.endswith("weight")
        count += 1
    assert count == 6 + 3 + 6 + 2 + 2 + 1  # every weight and bias of 2 -> 3 -> 2 -> 1


def test_the_network_is_seeded_float64_whatever_the_global_generator_holds():
    gs.manual_seed(11)
    a = bp.panel_network("tanh", 5)
    gs.manual_seed(12)  # another panel reseeding gradstep's generator changes nothing here
    b = bp.panel_network("tanh", 5)
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert p.data.dtype == np.float64 and np.array_equal(p.data, q.data), name
    other = bp.panel_network("tanh", 6)
    assert not np.array_equal(a[0].weight.data, other[0].weight.data)
    expected = np.random.default_rng(5).standard_normal((3, 2))  # the first parameter drawn
    np.testing.assert_array_equal(a[0].weight.data, expected)
    with pytest.raises(ValueError, match="activation must be one of"):
        bp.panel_network("softplus", 0)


def test_steps_are_gradient_descent_as_pytorch_takes_them():
    lrs = [0.5, 0.25, 1.0]
    model = bp.panel_network("sigmoid", 2)
    expected = {n: p.data.copy() for n, p in model.named_parameters()}
    for lr in lrs:  # the same steps by hand, with PyTorch's gradients
        _, _, _, grads = _torch_passes(model, "sigmoid")
        for n, p in model.named_parameters():
            expected[n] = expected[n] - lr * grads[n]
            p.data[...] = expected[n]
    stepped = bp.panel_network("sigmoid", 2, lrs)
    for n, p in stepped.named_parameters():
        np.testing.assert_allclose(p.data, expected[n], rtol=1e-13, atol=1e-15)
    _, _, loss, _ = _torch_passes(stepped, "sigmoid")
    assert bp.mse_loss(stepped, X, Y) == pytest.approx(loss, rel=1e-13)
    assert bp.mse_loss(stepped, X, Y) < bp.mse_loss(bp.panel_network("sigmoid", 2), X, Y)


def test_the_layout_names_every_weight_and_bias_with_its_value():
    model = bp.panel_network("relu", 1)
    layout = bp.network_layout(model)
    assert layout["widths"] == [2, 3, 2, 1]
    assert len(layout["weights"]) == 6 + 6 + 2 and len(layout["biases"]) == 3 + 2 + 1
    params = dict(model.named_parameters())
    for w in layout["weights"]:
        assert w["id"] == f"weight-{w['layer']}-{w['out']}-{w['in']}"
        assert w["value"] == params[w["parameter"]].data[tuple(w["index"])]
        assert w["index"] == [w["out"], w["in"]]
    for b in layout["biases"]:
        assert b["id"] == f"bias-{b['layer']}-{b['out']}"
        assert b["value"] == params[b["parameter"]].data[b["out"]]
    assert {w["parameter"] for w in layout["weights"]} == {"0.weight", "2.weight", "4.weight"}


def test_the_backward_route_and_last_step_are_the_later_neurons():
    model = bp.panel_network("sigmoid", 0)
    route = bp.backward_route(model, "0.weight", (1, 0))
    assert route["neurons"] == ["neuron-1-1", "neuron-2-0", "neuron-2-1", "neuron-3-0"]
    assert route["weights"] == ["weight-1-0-1", "weight-1-1-1", "weight-2-0-0", "weight-2-0-1"]
    assert bp.backward_route(model, "4.bias", (0,)) == {"neurons": ["neuron-3-0"], "weights": []}
    # the last backward step of h1.1: sigma'(z) * sum_j w_j1 dC/dz_j, with PyTorch's dC/dz_j
    e = bp.explain_for_panel(model, "sigmoid", X, Y, "0.weight", (1, 0))
    _, zs, _, _ = _torch_passes(model, "sigmoid")
    terms = e["recursion"]["terms"]
    assert [t["neuron"] for t in terms] == ["neuron-2-0", "neuron-2-1"]
    for j, t in enumerate(terms):
        assert t["weight"] == model[2].weight.data[j, 1]
        np.testing.assert_allclose(t["backward"], zs[1].grad[:, j].numpy(), atol=1e-15)
    s = torch.sigmoid(zs[0][:, 1]).detach().numpy()
    rebuilt = s * (1 - s) * sum(t["weight"] * np.array(t["backward"]) for t in terms)
    np.testing.assert_allclose(e["backward"], rebuilt, rtol=1e-12)
    out = bp.explain_for_panel(model, "sigmoid", X, Y, "4.bias", (0,))
    assert out["recursion"]["output"] and "2 (ŷ − y) / N" in out["recursion"]["rule"]


def test_a_relu_neuron_that_is_off_passes_no_gradient_back():
    model = bp.panel_network("relu", 0)
    _, zs, _, _ = _torch_passes(model, "relu")
    off = zs[0].detach().numpy() <= 0
    assert off.any()  # seed 0 has a neuron that is off for some sample (else the test says nothing)
    n, j = np.argwhere(off)[0]
    e = bp.explain_for_panel(model, "relu", X, Y, "0.bias", (int(j),))
    assert e["backward"][n] == 0.0 and e["products"][n] == 0.0


def test_unknown_weights_are_refused():
    model = bp.panel_network("sigmoid", 0)
    with pytest.raises(KeyError, match="no parameter '9.weight'"):
        bp.explain_for_panel(model, "sigmoid", X, Y, "9.weight", (0, 0))
    with pytest.raises(IndexError, match=r"outside 2.weight of shape \[2, 3\]"):
        bp.explain_for_panel(model, "sigmoid", X, Y, "2.weight", (2, 0))
    with pytest.raises(IndexError, match="outside 0.bias"):
        bp.explain_for_panel(model, "sigmoid", X, Y, "0.bias", (0, 0))
