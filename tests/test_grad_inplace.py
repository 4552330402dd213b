""".grad as a Tensor view and in-place updates: the homework's hand-written update, checked
against PyTorch step by step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gradstep as gs
from gradstep import nn, optim

RNG = np.random.default_rng(3)
X = RNG.standard_normal((8, 3))
Y = RNG.standard_normal((8, 1))


def _pair():
    w0 = RNG.standard_normal((3, 1))
    return (
        gs.tensor(w0, requires_grad=True, dtype=np.float64),
        torch.tensor(w0, requires_grad=True),
    )


def test_grad_is_a_view_of_the_gradient_array():
    w = gs.tensor([1.0, -2.0, 3.0], requires_grad=True)
    (w * w).sum().backward()
    g = w.grad
    assert isinstance(g, gs.Tensor) and not g.requires_grad
    assert g.data is w.grad.data  # the same array on every read: no copy
    assert np.shares_memory(g.numpy(), w.grad.data)
    assert g.tolist() == [2.0, -4.0, 6.0]
    assert float(g.norm()) == pytest.approx(np.sqrt(56.0))
    g.zero_()
    assert w.grad.tolist() == [0.0, 0.0, 0.0]
    (w * 3).sum().backward()  # accumulates into the zeroed array, as PyTorch
    assert w.grad.tolist() == [3.0, 3.0, 3.0]
    assert np.isfinite(w.grad).all() and np.abs(w.grad).max() == 3.0  # NumPy takes it


def test_grad_assignment_takes_tensors_arrays_and_none_and_checks_the_shape():
    w = gs.tensor(np.zeros(3), requires_grad=True)
    w.grad = gs.tensor([1.0, 2.0, 3.0])
    assert isinstance(w._grad, np.ndarray) and w.grad.tolist() == [1.0, 2.0, 3.0]
    w.grad = np.ones(3)
    assert w.grad.dtype == w.dtype
    w.grad = None
    assert w.grad is None
    with pytest.raises(ValueError, match=r"shape \(2,\).*\(3,\)"):
        w.grad = np.ones(2)


@pytest.mark.parametrize("style", ["augmented", "data", "methods"])
def test_a_hand_written_gradient_descent_loop_equals_pytorchs(style):
    ours, theirs = _pair()
    xo, yo = gs.tensor(X, dtype=np.float64), gs.tensor(Y, dtype=np.float64)
    xt, yt = torch.tensor(X), torch.tensor(Y)
    lr = 0.1
    for _ in range(5):
        ((xo @ ours - yo) ** 2).mean().backward()
        ((xt @ theirs - yt) ** 2).mean().backward()
        if style == "augmented":
            with gs.no_grad():
                ours -= lr * ours.grad
            ours.grad.zero_()
        elif style == "data":
            ours.data -= lr * ours.grad  # ndarray -= Tensor stays an array, in place
            ours.grad = None
        else:
            with gs.no_grad():
                ours.sub_(ours.grad, alpha=lr)
            ours.grad.data[...] = 0
        with torch.no_grad():
            theirs -= lr * theirs.grad
        theirs.grad.zero_()
        assert ours.is_leaf and ours.requires_grad and isinstance(ours.data, np.ndarray)
        np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-13)


def test_in_place_on_a_leaf_that_requires_grad_is_refused_while_recording():
    w = gs.tensor([1.0, 2.0], requires_grad=True)
    for change in (lambda: w.add_(1), lambda: w.zero_(), lambda: w.mul_(2)):
        with pytest.raises(RuntimeError, match="no_grad"):
            change()
    with pytest.raises(RuntimeError, match="no_grad"):
        w += 1
    tw = torch.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        tw += 1  # PyTorch refuses the same
    assert w.tolist() == [1.0, 2.0]


def test_augmented_assignment_in_the_graph_keeps_gradients_right():
    a, ta = _pair()
    total = gs.zeros((8, 1), dtype=np.float64)
    tt = torch.zeros((8, 1), dtype=torch.float64)
    for k in range(3):
        total += (gs.tensor(X, dtype=np.float64) @ a) * (k + 1)
        tt += (torch.tensor(X) @ ta) * (k + 1)
    total.sum().backward()
    tt.sum().backward()
    np.testing.assert_allclose(a.grad.data, ta.grad.numpy(), rtol=1e-13)


def test_in_place_dtype_rules_and_the_other_methods():
    n = gs.tensor([1, 2, 3])
    n += 2
    assert n.tolist() == [3, 4, 5] and n.dtype == np.int64
    with pytest.raises(TypeError, match=r"\+="):
        n += 0.5  # PyTorch: "result type Float can't be cast to Long"
    x = gs.tensor([-2.0, 0.5, 3.0])
    keep = x.data
    x.clamp_(min=0, max=1).mul_(4).add_(1).div_(2)
    assert x.data is keep and x.tolist() == [0.5, 1.5, 2.5]
    x.fill_(7.0)
    assert x.tolist() == [7.0, 7.0, 7.0]
    x.copy_(np.array([1, 2, 3]))
    assert x.tolist() == [1.0, 2.0, 3.0] and x.dtype == np.float32
    with pytest.raises(ValueError, match="copy_"):
        x.copy_(np.ones(4))


def test_in_place_through_an_optimizers_flat_buffer_reaches_the_optimizer():
    gs.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    x = gs.tensor(X)
    (model(x) ** 2).mean().backward()
    opt.step()
    with gs.no_grad():
        model.weight.mul_(0.5)  # the parameter's data is a view of the optimizer's buffer
    (flat,) = opt._flat
    assert np.shares_memory(model.weight.data, flat.data)
    expected = model.weight.numpy().copy()
    opt.zero_grad()
    (model(x) ** 2).mean().backward()
    g = model.weight.grad.numpy().copy()
    opt.step()
    np.testing.assert_allclose(model.weight.data, expected - 0.1 * g, rtol=1e-6)


def test_numpy_meets_tensors_in_the_graph_or_as_arrays():
    w = gs.tensor([1.0, 2.0], requires_grad=True)
    y = np.array([3.0, 4.0]) * w  # the tensor's reflected operator: in the graph
    assert isinstance(y, gs.Tensor) and y.requires_grad
    assert (np.array([2.0, 2.0]) < w).tolist() == [False, False]
    y.sum().backward()
    assert w.grad.tolist() == [3.0, 4.0]
    assert float(np.sum(w)) == 3.0 and float(np.mean(w)) == 1.5 and float(np.prod(w)) == 2.0
    assert bool(np.all(w > 0)) and not bool(np.any(w > 5))
    assert float(np.max(w)) == 2.0


def test_a_compiled_step_that_reads_grad_runs_eagerly_and_stays_right():
    w = gs.tensor(np.ones(3), requires_grad=True, dtype=np.float64)
    norms = []

    @gs.compile
    def step(x):
        w.grad = None
        (w * x).sum().backward()
        norms.append(float(w.grad.norm()))  # Python code on a gradient: not replayable

    with pytest.warns(gs.CompileWarning, match="reads a .grad"):
        for k in range(3):
            step(gs.tensor(np.full(3, k + 1.0), dtype=np.float64))
    assert norms == pytest.approx([np.sqrt(3) * (k + 1) for k in range(3)])
    assert step.replays == 0
