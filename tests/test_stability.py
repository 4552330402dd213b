"""Numerics that must stay finite and exact where naive formulas overflow or cancel."""

from __future__ import annotations

import numpy as np
import pytest

import gradstep as gs
import gradstep.functional as F


def t64(x, grad=False):
    return gs.tensor(x, dtype=np.float64, requires_grad=grad)


def test_sigmoid_keeps_relative_precision_in_both_tails():
    y = F.sigmoid(t64([-1000.0, -100.0, 0.0, 100.0, 1000.0])).data
    assert y[0] == 0.0 and y[-1] == 1.0 and y[2] == 0.5
    np.testing.assert_allclose(y[1], 3.720075976020836e-44, rtol=1e-12)


@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax])
def test_softmax_family_of_large_logits_matches_float64_reference(fn):
    x = np.array([1000.0, 1001.0, 1002.0])
    shifted = x - 1002.0
    ref_log = shifted - np.log(np.sum(np.exp(shifted)))
    ref = np.exp(ref_log) if fn is F.softmax else ref_log
    for dtype in (np.float32, np.float64):
        out = fn(gs.tensor(x, dtype=dtype))
        assert np.isfinite(out.data).all()
        np.testing.assert_allclose(out.data, ref, rtol=1e-6)


def test_log_softmax_is_shift_invariant_up_to_input_rounding():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6))
    shifted = F.log_softmax(t64(x + 1e7)).data
    np.testing.assert_allclose(shifted, F.log_softmax(t64(x)).data, atol=4e-9, rtol=0)


def test_cross_entropy_of_huge_logits_is_finite_and_exact():
    logits = np.array([[1.0, 2.0, 3.0], [3.0, -1.0, 0.5]]) * 1e8
    labels = np.array([0, 0])
    x = t64(logits, grad=True)
    loss = F.cross_entropy(x, labels)
    loss.backward()
    # row 0: -log softmax = 3e8 - 1e8 exactly; row 1: the label is the max, loss ~ 0
    np.testing.assert_allclose(loss.item(), (2e8 + 0.0) / 2, rtol=1e-12)
    assert np.isfinite(x.grad).all()


def test_bce_with_logits_at_plus_minus_1000():
    x = t64([-1000.0, 1000.0, -1000.0, 1000.0], grad=True)
    t = np.array([0.0, 1.0, 1.0, 0.0])
    loss = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    np.testing.assert_allclose(loss.data, [0.0, 0.0, 1000.0, 1000.0], atol=1e-300)
    loss.sum().backward()
    np.testing.assert_allclose(x.grad, [0.0, 0.0, -1.0, 1.0])


@pytest.mark.parametrize(
    "loss", [F.mse_loss, F.l1_loss, F.huber_loss, F.binary_cross_entropy_with_logits]
)
def test_empty_batch_is_an_error_not_nan(loss):
    with pytest.raises(ValueError, match="empty batch"):
        loss(gs.zeros(0, 1), np.zeros((0, 1)))


def test_empty_batch_cross_entropy_is_an_error():
    with pytest.raises(ValueError, match="empty batch"):
        F.cross_entropy(gs.zeros(0, 3), np.zeros(0, dtype=np.int64))


def test_loss_shape_mismatch_is_an_error_naming_both_shapes():
    with pytest.raises(ValueError, match=r"\(4, 1\).*\(4,\)"):
        F.mse_loss(gs.zeros(4, 1), np.zeros(4))


def test_cross_entropy_rejects_bad_labels_by_index():
    with pytest.raises(ValueError, match="label 5 at index 1"):
        F.cross_entropy(gs.zeros(2, 3), np.array([0, 5]))
    with pytest.raises(TypeError, match="integer"):
        F.cross_entropy(gs.zeros(2, 3), np.array([0.0, 1.0]))


def test_softmax_of_empty_is_empty():
    assert F.softmax(gs.zeros(0, 3)).shape == (0, 3)


def test_nan_propagates_through_softmax_rows_only():
    x = np.array([[0.0, np.nan, 1.0], [0.0, 1.0, 2.0]])
    out = F.log_softmax(t64(x)).data
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()


@pytest.mark.parametrize("p", [0.0, 2.0, -1.0, 0.5, 3.0])
def test_pow_gradients_at_zero_equal_pytorchs(p):
    import torch

    a = gs.tensor([0.0, 2.0, 0.5], requires_grad=True, dtype=np.float64)
    e = gs.tensor(p, requires_grad=True, dtype=np.float64)
    (a**e).sum().backward()
    ta = torch.tensor([0.0, 2.0, 0.5], requires_grad=True, dtype=torch.float64)
    te = torch.tensor(p, requires_grad=True, dtype=torch.float64)
    (ta**te).sum().backward()
    np.testing.assert_array_equal(a.grad, ta.grad.numpy())
    np.testing.assert_array_equal(e.grad, te.grad.numpy())
    x = gs.tensor([0.0, 3.0], requires_grad=True, dtype=np.float64)
    (gs.relu(x) ** 0).sum().backward()  # the case: NaN before
    assert x.grad.tolist() == [0.0, 0.0]


def test_an_infinite_upstream_gradient_is_selected_away_not_multiplied():
    import torch

    d2 = gs.tensor([-1e-7, 4.0], requires_grad=True, dtype=np.float64)
    d2.clip(min=0).sqrt().sum().backward()  # the distance pattern (no warning: pytest errors)
    t = torch.tensor([-1e-7, 4.0], requires_grad=True, dtype=torch.float64)
    t.clamp(min=0).sqrt().sum().backward()
    np.testing.assert_array_equal(d2.grad, t.grad.numpy())
    for dtype in (np.float32, np.float64):
        z = gs.tensor([-1.0, 2.0, 0.0], requires_grad=True, dtype=dtype)
        gs.relu(z).log().sum().backward()
        assert z.grad.tolist() == [0.0, 0.5, 0.0] and z.grad.dtype == dtype


def test_infinite_results_of_log_div_exp_sqrt_are_values_not_warnings():
    import torch

    # pytest turns warnings into errors here: each line would fail if NumPy warned
    cases = [
        (lambda t: t.log(), [0.0, -1.0, 2.0]),
        (lambda t: t / 0, [1.0, 0.0, -1.0]),
        (lambda t: t.exp(), [1000.0, -1000.0, 0.0]),
        (lambda t: t.sqrt(), [0.0, 4.0, 9.0]),
    ]
    for fn, values in cases:
        ours = gs.tensor(values, requires_grad=True, dtype=np.float64)
        theirs = torch.tensor(values, requires_grad=True, dtype=torch.float64)
        out, ref = fn(ours), fn(theirs)
        np.testing.assert_array_equal(out.data, ref.detach().numpy())
        out.sum().backward()
        ref.sum().backward()
        np.testing.assert_array_equal(ours.grad, theirs.grad.numpy())


def test_numpy_warnings_stay_inside_the_ops_but_user_code_still_warns():
    """Outside pytest (whose filterwarnings=error comes first), an overflow inside an op gives
    inf silently, as PyTorch does, even under ``python -W error``; the user's NumPy does not."""
    import subprocess
    import sys

    code = (
        "import numpy as np, gradstep as gs\n"
        "x = gs.tensor(np.float32([1e30, 1e30]), requires_grad=True)\n"
        "y = (x * x * x).sum()\n"
        "y.backward()\n"
        "print(float(y), x.grad.tolist(), (x * 0).log().tolist())\n"
        "try:\n"
        "    np.float32([1e30]) * np.float32([1e30])\n"
        "except RuntimeWarning:\n"
        "    print('user warned')\n"
    )
    run = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=True
    )
    assert run.stderr == ""
    assert run.stdout.splitlines() == ["inf [inf, inf] [-inf, -inf]", "user warned"]
