"""The backward pass: accumulation, deep graphs, no_grad, anomaly detection, errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import gradstep as gs
import gradstep.functional as F
from gradstep.testing import GradcheckError, gradcheck


def test_gradients_accumulate_across_backward_calls():
    w = gs.tensor([1.0, 2.0], requires_grad=True)
    (w * 3).sum().backward()
    (w * w).sum().backward()
    np.testing.assert_allclose(w.grad, [3 + 2, 3 + 4])


def test_value_used_twice_gets_both_contributions():
    x = gs.tensor(3.0, requires_grad=True)
    y = x * x + x  # dy/dx = 2x + 1
    y.backward()
    assert x.grad == 7.0


def test_shared_gradient_buffers_are_not_aliased():
    a = gs.tensor([1.0], requires_grad=True)
    b = gs.tensor([1.0], requires_grad=True)
    (a + b).sum().backward()
    a.grad += 10  # must not change b.grad (Add hands one array to both inputs)
    assert b.grad[0] == 1.0


def test_chain_of_20000_ops_backpropagates_without_recursion_error():
    x = gs.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(20_000):
        y = y * 1.0
    y.backward()
    assert x.grad == 1.0
    assert sys.getrecursionlimit() <= 20_000


def test_no_grad_records_nothing_and_restores():
    w = gs.tensor([1.0], requires_grad=True)
    with gs.no_grad():
        y = w * 2
        assert not gs.is_grad_enabled()
    assert gs.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None

    @gs.no_grad()
    def f(t):
        return t * 3

    assert not f(w).requires_grad


def test_backward_on_non_scalar_without_grad_names_the_shape():
    x = gs.randn(2, 3, requires_grad=True)
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        (x * 2).backward()
    with pytest.raises(ValueError, match=r"\(3,\).*\(2, 3\)"):
        (x * 2).backward(np.ones(3))
    y = x * 2
    y.backward(np.ones((2, 3)))
    np.testing.assert_allclose(x.grad, 2.0)


def test_backward_on_tensor_without_grad_is_a_clear_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        gs.tensor(1.0).backward()


def test_second_backward_through_freed_graph_is_an_error_unless_retained():
    x = gs.tensor(2.0, requires_grad=True)
    y = (x * x).exp()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * 4 * np.exp(4.0), rtol=1e-6)
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_freed_graph_met_in_the_middle_of_a_pass_is_the_same_error():
    x = gs.tensor(2.0, requires_grad=True)
    y = x * x
    (y * 2.0).backward()  # frees y's node
    with pytest.raises(RuntimeError, match="retain_graph"):
        (y * 3.0).backward()


def test_a_tensor_used_early_and_late_waits_for_every_consumer():
    # The pass takes the waiting node made last: h (made first) is used by k, by m (made
    # last) and through the long chain, and must not run before all of them gave to it.
    rng = np.random.default_rng(1)
    xv = rng.standard_normal(4)
    ours = gs.tensor(xv, dtype=np.float64, requires_grad=True)
    theirs = torch.tensor(xv, requires_grad=True)
    for x in (ours, theirs):
        h = x * 2.0
        k = h.tanh()
        chain = k
        for _ in range(5):
            chain = chain * 1.1 + h
        (chain * h + k.exp()).sum().backward()
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-12)
    assert gradcheck(lambda x: (x * 2.0).tanh() * (x * 2.0), ours.detach().requires_grad_())


def _graphs_passing_a_gradient_on():
    """Graphs where an op hands on a gradient that a leaf could adopt while an intermediate
    still waits on the same array: the root's seed (a 0-d loss whose last op is an Add of a
    leaf) and a gradient summed from two consumers."""

    def root_seed(a):
        return a + ((a * 2.0) * 3.0 + a * 5.0)  # 1 + 6 + 5

    def summed(a):
        f = (a * 2.0) * 3.0
        d = a * 5.0
        e = a + f
        return ((e * 1.0 + e * 1.0) + d).sum()  # 2 (1 + 6) + 5

    return [(root_seed, 2.0, 12.0), (summed, np.array([1.0, 2.0]), 19.0)]


@pytest.mark.parametrize("case", range(2))
def test_a_gradient_handed_on_is_never_adopted_by_a_leaf(case):
    build, value, expected = _graphs_passing_a_gradient_on()[case]
    a = gs.tensor(value, dtype=np.float64, requires_grad=True)
    build(a).backward()
    np.testing.assert_array_equal(a.grad, np.full(np.shape(value), expected))
    ta = torch.tensor(value, dtype=torch.float64, requires_grad=True)
    build(ta).backward()
    np.testing.assert_array_equal(a.grad, ta.grad.numpy())


def test_fresh_leaf_gradients_are_adopted_not_copied(monkeypatch):
    # An id in `handed` can outlive its array and come back on a fresh weight gradient; the
    # pass drops the ids of gradients it is done with, so no layer's gradient gets copied.
    from gradstep import autograd, nn

    model = nn.mlp(20, [16, 8], 1, "relu")
    x, y = gs.tensor(np.ones((4, 20))), gs.tensor(np.zeros((4, 1)))
    copied = []
    slow_path = autograd._accumulate_leaf
    monkeypatch.setattr(
        autograd,
        "_accumulate_leaf",
        lambda leaf, g, h: copied.append(g.shape) or slow_path(leaf, g, h),
    )
    for _ in range(3):
        model.zero_grad()
        F.mse_loss(model(x), y).backward()
        assert copied == []
    assert all(p.grad is not None for p in model.parameters())


def test_detect_anomaly_names_the_op_and_the_users_line():
    x = gs.tensor([0.0, 1.0], dtype=np.float64, requires_grad=True)
    with np.errstate(invalid="ignore", divide="ignore"), gs.detect_anomaly():
        y = (x.sqrt() * 0.0).sum()  # sqrt's backward gives 0 / 0 at x = 0
        with pytest.raises(gs.AnomalyError, match=r"Sqrt.*test_autograd.py:\d+"):
            y.backward()


def test_gradcheck_reports_input_index_expected_and_got():
    from gradstep.autograd import Function

    class WrongSquare(Function):
        def forward(self, a):
            self.a = a
            return a * a

        def backward(self, g):
            return g * self.a  # should be 2 a

    x = gs.tensor([1.0, 2.0], dtype=np.float64, requires_grad=True)
    with pytest.raises(GradcheckError, match=r"input 0 at index \(0,\): expected .*got"):
        gradcheck(WrongSquare.apply, x)


def test_gradcheck_refuses_float32():
    with pytest.raises(TypeError, match="float64"):
        gradcheck(F.sigmoid, gs.tensor([1.0], requires_grad=True))


def test_small_mlp_gradients_equal_pytorch():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 5)), rng.standard_normal((16, 1))
    W1, b1 = rng.standard_normal((5, 8)), rng.standard_normal(8)
    W2, b2 = rng.standard_normal((8, 1)), rng.standard_normal(1)

    params = [gs.tensor(p, dtype=np.float64, requires_grad=True) for p in (W1, b1, W2, b2)]
    h = F.sigmoid(gs.tensor(x, dtype=np.float64) @ params[0] + params[1])
    loss = F.mse_loss(h @ params[2] + params[3], y)
    loss.backward()

    tp = [torch.tensor(p, requires_grad=True) for p in (W1, b1, W2, b2)]
    th = torch.sigmoid(torch.tensor(x) @ tp[0] + tp[1])
    tloss = torch.nn.functional.mse_loss(th @ tp[2] + tp[3], torch.tensor(y))
    tloss.backward()
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-12)
    for ours, theirs in zip(params, tp):
        np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-10)


def test_import_gradstep_loads_numpy_alone():
    code = (
        "import sys, gradstep, gradstep.functional, gradstep.testing\n"
        "heavy = {'torch', 'pandas', 'matplotlib', 'cupy', 'sklearn', 'scipy'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_adopted_leaf_gradient_never_aliases_a_pending_gradient():
    # Add hands one array to both inputs; if the leaf adopted it while the intermediate still
    # waited to be processed, the leaf's later "+=" would corrupt the intermediate's gradient.
    rng = np.random.default_rng(0)
    av, bv = rng.standard_normal(3), rng.standard_normal(3)
    for build in (
        lambda a, b: (((b * 2.0) + a) * 1.5 + a * 3.0).sum(),
        lambda a, b: ((a + (b * 2.0)) * 1.5 + a * 3.0).sum(),
        lambda a, b: ((a * 3.0) + ((b * 2.0) + a) * 1.5).sum(),
        lambda a, b: (((b.exp() + a) * 1.5) + (a * a) + (a + b).tanh()).sum(),
        lambda a, b: (((b * 2.0) + a) * ((b * 2.0) + a) + a * 3.0 + (a + b) * (a - b)).sum(),
    ):
        ours = [gs.tensor(v, dtype=np.float64, requires_grad=True) for v in (av, bv)]
        theirs = [torch.tensor(v, requires_grad=True) for v in (av, bv)]
        build(*ours).backward()
        build(*theirs).backward()
        for o, t in zip(ours, theirs):
            np.testing.assert_allclose(o.grad, t.grad.numpy(), rtol=1e-12)
