"""Checking gradients: central differences in float64, and the same computation in PyTorch."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gradstep.tensor import Tensor


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with central differences."""


def gradcheck(
    fn: Callable,
    *inputs,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Check ``fn``'s backward pass against central differences.

    The output is contracted with a random upstream gradient ``u`` (so every output element
    matters, not just their sum), and for every element ``x_i`` of every input that requires a
    gradient, ``(f(x + eps e_i) - f(x - eps e_i)) . u / 2 eps`` is compared with the engine's
    gradient. Inputs must be float64: float32 differences are dominated by rounding.

    Returns True, or raises :class:`GradcheckError` naming the input, the index, the expected
    (numerical) and the obtained (analytic) value.
    """
    tensors = [x if isinstance(x, Tensor) else Tensor(x, dtype=np.float64) for x in inputs]
    for i, t in enumerate(tensors):
        if t.requires_grad and t.dtype != np.float64:
            raise TypeError(f"gradcheck needs float64 inputs; input {i} is {t.dtype}")
    out = fn(*tensors)
    rng = np.random.default_rng(seed)
    upstream = rng.standard_normal(out.shape)
    for t in tensors:
        t.grad = None
    if out.requires_grad:
        out.backward(upstream)

    def contracted() -> float:
        return float(np.sum(fn(*tensors).data * upstream))

    for i, t in enumerate(tensors):
        if not t.requires_grad:
            continue
        analytic = t._grad if t._grad is not None else np.zeros_like(t.data)
        if analytic.shape != t.shape or analytic.dtype != t.dtype:
            raise GradcheckError(
                f"input {i}: gradient has shape {analytic.shape} and dtype {analytic.dtype}, "
                f"the input {t.shape} and {t.dtype}"
            )
        flat = t.data.reshape(-1) if t.data.flags.c_contiguous else None
        if flat is None:  # sliced views: perturb a contiguous copy in place of the view
            t.data = np.ascontiguousarray(t.data)
            flat = t.data.reshape(-1)
        for j in range(flat.size):
            orig = flat[j]
            flat[j] = orig + eps
            plus = contracted()
            flat[j] = orig - eps
            minus = contracted()
            flat[j] = orig
            numeric = (plus - minus) / (2 * eps)
            got = analytic.reshape(-1)[j]
            if not abs(got - numeric) <= atol + rtol * abs(numeric):
                index = np.unravel_index(j, t.shape)
                raise GradcheckError(
                    f"gradient of input {i} at index {tuple(int(k) for k in index)}: "
                    f"expected {numeric!r} (central differences), got {got!r}"
                )
    return True


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6):
    """Central-difference gradient of a scalar function of a float64 array."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for j in range(flat.size):
        orig = flat[j]
        flat[j] = orig + eps
        plus = f(x)
        flat[j] = orig - eps
        minus = f(x)
        flat[j] = orig
        gflat[j] = (plus - minus) / (2 * eps)
    return g


def compare_with_torch(gs_fn: Callable, torch_fn: Callable, *arrays, rtol=1e-8, atol=1e-12):
    """Run the same function in gradstep and PyTorch (float64) and compare output and gradients.

    ``arrays`` are float64 NumPy arrays; each becomes a leaf requiring grad in both systems. The
    output is contracted with the same random upstream gradient. Raises AssertionError on a
    difference; returns the (output, gradients) of gradstep.
    """
    import torch

    rng = np.random.default_rng(1)
    gs_in = [Tensor(a, requires_grad=True, dtype=np.float64) for a in arrays]
    th_in = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    gs_out = gs_fn(*gs_in)
    th_out = torch_fn(*th_in)
    np.testing.assert_allclose(gs_out.data, th_out.detach().numpy(), rtol=rtol, atol=atol)
    upstream = rng.standard_normal(gs_out.shape)
    gs_out.backward(upstream)
    th_out.backward(torch.tensor(upstream))
    for i, (g, t) in enumerate(zip(gs_in, th_in)):
        tg = np.zeros(g.shape) if t.grad is None else t.grad.numpy()
        gg = np.zeros(g.shape) if g._grad is None else g._grad
        np.testing.assert_allclose(gg, tg, rtol=rtol, atol=atol, err_msg=f"gradient of input {i}")
    return gs_out, [g._grad for g in gs_in]
