"""Every op of the table: gradcheck, PyTorch equality, gradient shape and dtype, stability."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gradstep as gs
from gradstep.testing import gradcheck
from tests.ops.cases import CASES, OpCase, draw_values, shift_apart

SIDE = dict(min_side=0, max_side=4)


@st.composite
def shapes_for(draw, case: OpCase) -> list[tuple]:
    """Input shapes for ``case``: 0-d, size-0 and size-1 dims, and broadcasting pairs."""
    min_side = 1 if case.nonempty else 0
    if case.kind in ("unary", "rows"):
        return [
            draw(
                hnp.array_shapes(min_dims=case.min_dims, max_dims=3, min_side=min_side, max_side=4)
            )
        ]
    if case.kind == "binary":
        pair = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, **SIDE))
        return list(pair.input_shapes)
    if case.kind == "same":
        s = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=min_side, max_side=4))
        return [s, s]
    if case.kind == "join":
        rest = draw(hnp.array_shapes(min_dims=0, max_dims=2, **SIDE))
        return [(draw(st.integers(0, 3)),) + rest, (draw(st.integers(0, 3)),) + rest]
    if case.kind == "classify":
        return [(draw(st.integers(1, 5)), draw(st.integers(1, 5)))]
    dim = st.integers(1, 4)
    n, k, m, b = draw(dim), draw(dim), draw(dim), draw(st.integers(1, 3))
    if case.kind == "matmul":
        return draw(
            st.sampled_from(
                [
                    [(k,), (k,)],
                    [(n, k), (k,)],
                    [(k,), (k, m)],
                    [(n, k), (k, m)],
                    [(b, n, k), (k, m)],
                    [(b, n, k), (b, k, m)],
                    [(1, n, k), (b, k, m)],
                    [(k,), (b, k, m)],
                ]
            )
        )
    if case.kind == "linear":
        lead = draw(st.sampled_from([(), (n,), (b, n)]))
        return [lead + (k,), (m, k), (m,)]
    raise AssertionError(case.kind)


@st.composite
def inputs_for(draw, case: OpCase) -> list[np.ndarray]:
    """float64 inputs for ``case``, sometimes as non-contiguous sliced views."""
    shapes = draw(shapes_for(case))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    sliced = draw(st.booleans())
    arrays = []
    for shape, domain in zip(shapes, case.domain):
        if sliced and len(shape) >= 1:
            big = draw_values(rng, shape[:-1] + (2 * shape[-1],), domain)
            arrays.append(big[..., ::2])  # a strided view, as a user's slice would be
        else:
            arrays.append(draw_values(rng, shape, domain))
    return shift_apart(arrays, case.domain, rng)


def _leaves(arrays, dtype=np.float64):
    return [gs.Tensor(a, requires_grad=True, dtype=dtype) for a in arrays]


@pytest.mark.parametrize("case", CASES, ids=str)
@given(data=st.data())
def test_gradcheck(case: OpCase, data) -> None:
    arrays = data.draw(inputs_for(case))
    assert gradcheck(case.gs, *_leaves(arrays))


@pytest.mark.parametrize("case", CASES, ids=str)
@given(data=st.data())
def test_forward_and_backward_equal_pytorch(case: OpCase, data) -> None:
    arrays = data.draw(inputs_for(case))
    ours = _leaves(arrays)
    theirs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out, ref_out = case.gs(*ours), case.torch(*theirs)
    np.testing.assert_allclose(out.data, ref_out.detach().numpy(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(out.data, case.ref(*arrays), rtol=1e-8, atol=1e-12)
    upstream = np.random.default_rng(0).standard_normal(out.shape)
    out.backward(upstream)
    ref_out.backward(torch.tensor(upstream))
    for i, (a, b) in enumerate(zip(ours, theirs)):
        expected = np.zeros(a.shape) if b.grad is None else b.grad.numpy()
        got = np.zeros(a.shape) if a.grad is None else a.grad
        np.testing.assert_allclose(
            got, expected, rtol=1e-8, atol=1e-12, err_msg=f"{case.name}: gradient of input {i}"
        )


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(data=st.data())
def test_gradient_has_input_shape_and_dtype(case: OpCase, dtype, data) -> None:
    arrays = data.draw(inputs_for(case))
    leaves = _leaves(arrays, dtype)
    out = case.gs(*leaves)
    assert out.dtype == dtype, f"{case.name} turned {np.dtype(dtype)} into {out.dtype}"
    out.backward(np.ones(out.shape, dtype=dtype))
    for leaf in leaves:
        if leaf.grad is not None:
            assert leaf.grad.shape == leaf.shape
            assert leaf.grad.dtype == dtype
            assert isinstance(leaf.grad.data, np.ndarray)


FINITE = [c for c in CASES if c.finite_at_1000]


@pytest.mark.parametrize("case", FINITE, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_finite_at_plus_minus_1000(case: OpCase, dtype) -> None:
    base = np.array([[-1000.0, 1000.0, 0.0], [1000.0, 999.0, -1000.0]])
    shapes = {"binary": 2, "same": 2}.get(case.kind, 1)
    arrays = [
        base,
        base[::-1] if case.domain[-1] != "unit" else np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.25]]),
    ][:shapes]
    leaves = _leaves(arrays, dtype)
    out = case.gs(*leaves)
    out.backward(np.ones(out.shape, dtype=dtype))
    assert np.isfinite(out.data).all(), f"{case.name} forward at +-1000: {out.data}"
    for leaf in leaves:
        assert leaf.grad is None or np.isfinite(leaf.grad).all(), case.name
    with np.errstate(over="ignore", invalid="ignore"):
        ref = case.ref(*arrays)
    np.testing.assert_allclose(out.data, ref, rtol=1e-6 if dtype == np.float32 else 1e-12)


UNARY_ELEMENTWISE = [
    c
    for c in CASES
    if c.kind == "unary"
    and c.name
    in {
        "neg",
        "abs",
        "exp",
        "square",
        "sigmoid",
        "relu",
        "tanh",
        "softplus",
        "scale_shift",
        "clip",
        "leaky_relu",
    }
]


@pytest.mark.parametrize("case", UNARY_ELEMENTWISE, ids=str)
def test_nan_in_nan_out_where_numpy_has_it(case: OpCase) -> None:
    x = np.array([0.5, np.nan, -0.7, np.nan, 2.0])
    out = case.gs(gs.Tensor(x, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        expected = case.ref(x)
    np.testing.assert_array_equal(np.isnan(out.data), np.isnan(expected))


BINARY = [c for c in CASES if c.kind == "binary"]


@pytest.mark.parametrize("case", BINARY, ids=str)
@pytest.mark.parametrize("shapes", [((3, 1), (1, 4)), ((5,), (2, 5)), ((), (2, 3)), ((2, 0), (1,))])
def test_named_broadcasting_pairs_gradcheck_and_match_pytorch(case: OpCase, shapes) -> None:
    rng = np.random.default_rng(0)
    arrays = [draw_values(rng, s, d) for s, d in zip(shapes, case.domain)]
    assert gradcheck(case.gs, *_leaves(arrays))
    ours = _leaves(arrays)
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, ref = case.gs(*ours), case.torch(*theirs)
    out.backward(np.ones(out.shape))
    ref.backward(torch.ones(ref.shape, dtype=torch.float64))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-8, atol=1e-12)
        assert a.grad.shape == a.shape
