"""Tensor construction, dtype rules, operators with arrays and scalars, errors."""

from __future__ import annotations

import numpy as np
import pytest

import gradstep as gs


def test_floating_input_becomes_float32_integers_stay():
    assert gs.tensor([1.0, 2.0]).dtype == np.float32
    assert gs.tensor(np.zeros(3, dtype=np.float64)).dtype == np.float32
    assert gs.tensor([1, 2, 3]).dtype.kind == "i"
    assert gs.tensor(np.array([1, 2], dtype=np.int32)).dtype == np.int32
    assert gs.tensor([1.0], dtype=np.float64).dtype == np.float64


def test_default_dtype_switch_and_context():
    with gs.default_dtype(np.float64):
        assert gs.tensor([1.0]).dtype == np.float64
        assert gs.randn(2).dtype == np.float64
    assert gs.tensor([1.0]).dtype == np.float32
    gs.set_default_dtype(np.float64)
    try:
        assert gs.zeros(2).dtype == np.float64
    finally:
        gs.set_default_dtype(np.float32)
    with pytest.raises(TypeError, match="floating"):
        gs.set_default_dtype(np.int64)


def test_tensor_copies_its_input():
    a = np.ones(3, dtype=np.float32)
    t = gs.tensor(a)
    a[0] = 5
    assert t.data[0] == 1


def test_no_silent_upcast_from_numpy_operands():
    x = gs.tensor([1.0, 2.0], requires_grad=True)
    for y in (
        x + np.float64(1.5),
        x * np.array([2.0, 3.0]),
        np.array([2.0, 3.0]) - x,
        x / 3,
        2**x,
        x @ np.ones(2),
        x * gs.tensor([1, 2]),
    ):
        assert y.dtype == np.float32, y
    (x * np.array([2.0, 3.0])).sum().backward()
    assert x.grad.dtype == np.float32


def test_mixed_float_precisions_are_an_error_naming_both():
    with pytest.raises(TypeError, match="float32 and float64"):
        gs.tensor([1.0]) + gs.tensor([1.0], dtype=np.float64)


def test_operators_with_arrays_and_scalars_on_either_side():
    x = gs.tensor([[1.0, 2.0]], requires_grad=True)
    a = np.array([[3.0], [4.0]])
    out = (a + x) * (2 - x) / (x + 1) - 1.5 * (a @ x) + abs(-x) ** 2
    assert isinstance(out, gs.Tensor) and out.shape == (2, 2)
    out.sum().backward()
    # d/dx of the same expression written in NumPy, by central differences
    from gradstep.testing import numerical_gradient

    def f(v):
        return np.sum((a + v) * (2 - v) / (v + 1) - 1.5 * (a @ v) + np.abs(-v) ** 2)

    np.testing.assert_allclose(x.grad, numerical_gradient(f, x.data), rtol=1e-3)


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="int64"):
        gs.tensor([1, 2], requires_grad=True)


def test_matmul_shape_mismatch_names_the_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\) @ \(2, 3\)"):
        gs.randn(2, 3) @ gs.randn(2, 3)


def test_item_numpy_detach_and_facts():
    x = gs.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    assert x.shape == (1, 3) and x.ndim == 2 and x.size == 3 and x.dtype == np.float32
    assert isinstance(x.numpy(), np.ndarray)
    assert (x * 2).sum().item() == 12.0
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    with pytest.raises(ValueError, match=r"one element.*\(1, 3\)"):
        x.item()
    assert "requires_grad=True" in repr(x)


def test_zero_dim_results_are_arrays():
    x = gs.tensor(2.0, requires_grad=True)
    y = x.exp().log().sigmoid()
    assert isinstance(y.data, np.ndarray) and y.shape == ()
    y.backward()
    assert isinstance(x.grad.data, np.ndarray) and x.grad.shape == ()


def test_transpose_conventions():
    x = gs.randn(2, 3, 4)
    assert x.T.shape == (4, 3, 2)
    assert x.transpose(0, 2).shape == (4, 3, 2)  # two axes: swap them, as PyTorch
    assert x.transpose(1, 2, 0).shape == (3, 4, 2)  # full permutation, as NumPy
    assert x.permute(2, 0, 1).shape == (4, 2, 3)
    m = gs.randn(2, 3)
    assert m.transpose(0, 1).shape == (3, 2) and m.transpose().shape == (3, 2)


def test_comparisons_give_boolean_tensors_outside_the_graph():
    x = gs.tensor([1.0, -1.0], requires_grad=True)
    m = x > 0
    assert m.dtype == bool and not m.requires_grad
    assert m.tolist() == [True, False]


def test_manual_seed_reproduces_random_tensors():
    gs.manual_seed(3)
    a = gs.randn(5).numpy().copy()
    gs.manual_seed(3)
    assert np.array_equal(a, gs.randn(5).numpy())
    gs.manual_seed(4)
    assert not np.array_equal(a, gs.randn(5).numpy())
