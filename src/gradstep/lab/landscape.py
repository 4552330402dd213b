"""Loss landscapes of any network: the lecture's error surface L(w, b) generalised.

Two kinds of plane through the parameters theta of a trained (or untrained) network:

- two chosen weights (``"0.weight[3, 0]"``, ``"2.bias[0]"``), every other parameter fixed:
  :func:`weight_landscape`;
- two random *filter-normalised* directions (Li, Xu, Taylor, Studer and Goldstein, 2018,
  "Visualizing the Loss Landscape of Neural Nets"): the loss at theta + a d1 + b d2, where each
  filter of d (a row of a Linear weight: one output unit; an output channel of a convolution) is
  rescaled to the norm of the same filter in theta, so that a = 1 moves every unit by its own
  size and networks of different scales can be compared: :func:`filter_normalized_directions`,
  :func:`direction_landscape`. A training path can be laid on the plane
  (:func:`training_path`, :func:`project_path`), with the share of each displacement that the
  plane does not hold. Two random directions in a space of thousands of dimensions hold almost
  none of a path (Li et al., section 7): :func:`pca_directions` gives the plane that holds the
  most of it.

How the grid is evaluated. For an ``nn.Sequential`` of ``nn.Linear`` layers and elementwise
activations, with the MSE, cross-entropy or binary cross-entropy loss, a block of G grid points
is one array computation, the loss reduced per grid point. What does not move on the plane is
computed once for the whole grid: the layers before the first moving one, and the first moving
layer's three products (its input is shared, so its output is linear in a and b). In a weight
landscape one unit changes, and only its column is carried per grid point until a layer mixes
it into all units; past that, and for random directions, each layer is a batched matrix product
with the weights of every grid point stacked to shape (G, out, in). Blocks are bounded in memory
(``landscape_grid.CHUNK`` floats; the pass lives in ``landscape_grid``). Each activation and
loss is written as gradstep's own op computes it, so the grid equals one forward pass of the
engine per point to rounding (1e-12 in the tests). Any
other model or loss is evaluated one point at a time by the engine under ``no_grad``: the same
numbers, slower. The result says which (``"batched"``, and ``"fallback_reason"`` when not).

Everything is computed in float64 on a copy of the model: the caller's model is never changed
(except by :func:`training_path`, whose purpose is to train it).
"""

from __future__ import annotations

import re

import numpy as np

from gradstep import nn
from gradstep.lab.landscape_grid import _Batched
from gradstep.lab.network_hessian import LossFunction
from gradstep.optim.optimizer import Optimizer
from gradstep.tensor import Tensor

_NAME = re.compile(r"^\s*(?P<name>[^\[\]\s]+)\s*(?P<index>(?:\[[^\[\]]*\]\s*)*)$")
_INT = re.compile(r"^[+-]?\d+$")


# --- naming one weight ---------------------------------------------------------------------
def _listing(params: dict) -> str:
    return ", ".join(f"{n} {tuple(p.shape)}" for n, p in params.items())


def scalar_parameter(model: nn.Module, name) -> tuple[str, tuple[int, ...]]:
    """The parameter and index that ``name`` points at, e.g. ``"0.weight[3, 0]"``.

    Accepted forms: ``"0.weight[3, 0]"``, ``"0.weight[3,0]"``, ``"0.weight[3][0]"``, a leading
    ``"model."`` (``"model.0.weight[3, 0]"``), ``"0.bias[2]"``, negative indices (counted from
    the end, as in NumPy), and a bare name for a parameter of one element; also a tuple
    ``(parameter_name, index)``. Returns ``(parameter_name, index)`` with non-negative indices.

    Raises ValueError naming the bad part: an unknown parameter (listing the model's parameters
    with their shapes), the wrong number of indices, an index outside its range.
    """
    params = dict(model.named_parameters())
    if isinstance(name, tuple) and len(name) == 2 and isinstance(name[0], str):
        raw = [] if name[1] is None else [int(i) for i in np.ravel(name[1])]
        pname, parts, text = name[0], [str(i) for i in raw], f"{name[0]}{raw}"
    elif isinstance(name, str):
        m = _NAME.match(name)
        if m is None:
            raise ValueError(
                f"cannot read {name!r} as a weight: write the parameter's name, then one "
                "index per dimension, e.g. '0.weight[3, 0]' or '2.bias[0]'"
            )
        pname, text = m["name"], name
        parts = []
        for inside in re.findall(r"\[([^\]]*)\]", m["index"]):
            if inside.strip():
                parts += [s.strip() for s in inside.split(",")]
    else:
        raise ValueError(f"a weight is named by a string like '0.weight[3, 0]', got {name!r}")
    if pname not in params and pname.startswith("model.") and pname[6:] in params:
        pname = pname[6:]
    if pname not in params:
        raise ValueError(
            f"no parameter {pname!r} in the model; its parameters are: {_listing(params)}"
        )
    shape = tuple(params[pname].shape)
    for s in parts:
        if not _INT.match(s):
            raise ValueError(f"in {text!r}: {s!r} is not an integer index")
    idx = [int(s) for s in parts]
    if not idx and int(np.prod(shape)) == 1:
        return pname, (0,) * len(shape)
    if len(idx) != len(shape):
        example = f"{pname}[{', '.join('0' for _ in shape)}]"
        raise ValueError(
            f"{pname!r} has shape {shape}: name one entry with {len(shape)} "
            f"ind{'ex' if len(shape) == 1 else 'ices'} (e.g. {example!r}), got {len(idx)} "
            f"in {text!r}"
        )
    out = []
    for d, (i, n) in enumerate(zip(idx, shape)):
        if not -n <= i < n:
            raise ValueError(
                f"index {i} in {text!r} is outside 0..{n - 1} (dimension {d} of {pname!r}, "
                f"shape {shape})"
            )
        out.append(i % n)
    return pname, tuple(out)


def _label(pname: str, index: tuple[int, ...]) -> str:
    return f"{pname}[{', '.join(map(str, index))}]" if index else pname


def _flat_position(model: nn.Module, pname: str, index: tuple[int, ...]) -> int:
    start = 0
    for n, p in model.named_parameters():
        if n == pname:
            return start + (int(np.ravel_multi_index(index, p.shape)) if index else 0)
        start += p.size
    raise ValueError(f"no parameter {pname!r}")  # scalar_parameter has checked it


# --- checked inputs ------------------------------------------------------------------------
def _loss_function(model, loss_fn, X, y) -> LossFunction:
    """A float64 copy of the model and the engine's loss of it (kinks not frozen)."""
    f = LossFunction(model, loss_fn, X, y, freeze=False)
    value = f._loss(f.theta)
    if value.size != 1:
        raise ValueError(
            f"loss_fn must return one number (reduction 'mean' or 'sum'), got shape {value.shape}"
        )
    return f


def _vector(v, size: int, name: str) -> np.ndarray:
    a = np.asarray(v, np.float64).ravel()
    if a.size != size:
        raise ValueError(f"{name} has {a.size} entries; the model has {size} parameters")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds non-finite values")
    return a


def _grid(g, name: str) -> np.ndarray:
    a = np.asarray(g, np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of values, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds non-finite values")
    return a


def _offsets(span: float, resolution: int) -> np.ndarray:
    """span * linspace(-1, 1, resolution), with the centre exactly 0 when resolution is odd."""
    off = span * np.linspace(-1.0, 1.0, resolution)
    if resolution % 2:
        off[resolution // 2] = 0.0
    return off


def _plane(f: LossFunction, loss_fn, base, d1, d2, alphas, betas, batched):
    """The loss at base + a d1 + b d2 over the grid, shape (len(betas), len(alphas)); the
    flag whether it was batched and, when not, why."""
    engine = _Batched(f, loss_fn) if batched is not False else None
    if batched and not engine.ok:
        raise ValueError(f"no batched evaluation for this model: {engine.reason}")
    A, B = np.meshgrid(alphas, betas)
    a, b = A.ravel(), B.ravel()
    with np.errstate(over="ignore", invalid="ignore"):  # far out: inf or nan, not a warning
        if engine is not None and engine.ok:
            values = engine.losses(base, d1, d2, a, b)
        else:
            values = np.array([f.value(base + ai * d1 + bi * d2) for ai, bi in zip(a, b)])
    reason = "batched=False was asked" if engine is None else engine.reason
    return values.reshape(A.shape), engine is not None and engine.ok, reason


# --- the two landscapes ----------------------------------------------------------------------
def weight_landscape(
    model,
    loss_fn,
    X,
    y,
    first,
    second,
    span=1.0,
    resolution: int = 41,
    first_grid=None,
    second_grid=None,
    batched: bool | None = None,
) -> dict:
    """The loss over a grid of two named weights, every other parameter at its current value.

    Parameters
    ----------
    model : nn.Module
        Not changed (a float64 copy is used).
    loss_fn : callable
        ``loss_fn(model(X), y)``, a scalar: an ``nn`` loss module or a functional loss.
    X, y : array_like
        The data, X of shape (n_samples, n_features).
    first, second : str
        Weights named as :func:`scalar_parameter` reads them, e.g. ``"0.weight[3, 0]"``.
    span : float or (float, float)
        Each grid runs from the weight's current value - span to + span (the centre exactly on
        the grid when ``resolution`` is odd).
    resolution : int
        Points per axis.
    first_grid, second_grid : array_like, optional
        Explicit absolute values instead of ``span`` / ``resolution``.
    batched : bool, optional
        None: batched where the network allows; False: one engine pass per point; True:
        batched or a ValueError saying why not.

    Returns
    -------
    dict
        ``first``, ``second`` (canonical names), ``first_grid``, ``second_grid`` (absolute
        values), ``loss`` of shape (len(second_grid), len(first_grid)) (rows: the second
        weight, as :func:`gradstep.lab.surface.error_surface`), ``center`` (the two current
        values), ``center_loss`` (the model's loss), ``batched``, ``fallback_reason``.
    """
    f = _loss_function(model, loss_fn, X, y)
    names = [scalar_parameter(f.model, w) for w in (first, second)]
    k1, k2 = (_flat_position(f.model, *n) for n in names)
    labels = [_label(*n) for n in names]
    if k1 == k2:
        raise ValueError(f"first and second name the same weight, {labels[0]}")
    spans = np.broadcast_to(np.asarray(span, np.float64), (2,))
    if not (np.isfinite(spans).all() and (spans > 0).all()):
        raise ValueError(f"span must be positive and finite, got {span!r}")
    if not isinstance(resolution, (int, np.integer)) or resolution < 2:
        raise ValueError(f"resolution must be an integer >= 2, got {resolution!r}")
    c = (float(f.theta[k1]), float(f.theta[k2]))
    grids = [
        c[i] + _offsets(float(spans[i]), int(resolution)) if g is None else _grid(g, nm)
        for i, (g, nm) in enumerate(((first_grid, "first_grid"), (second_grid, "second_grid")))
    ]
    # theta = base + a e1 + b e2 with the two weights zeroed in base: each grid value lands
    # in its weight exactly (0 + a * 1 = a), on both paths
    base = f.theta.copy()
    base[[k1, k2]] = 0.0
    e1, e2 = np.zeros(f.size), np.zeros(f.size)
    e1[k1] = e2[k2] = 1.0
    loss, was_batched, reason = _plane(f, loss_fn, base, e1, e2, grids[0], grids[1], batched)
    return {
        "first": labels[0],
        "second": labels[1],
        "first_grid": grids[0],
        "second_grid": grids[1],
        "loss": loss,
        "center": c,
        "center_loss": f.value(),
        "batched": was_batched,
        "fallback_reason": reason,
    }


def direction_landscape(
    model,
    loss_fn,
    X,
    y,
    d1,
    d2,
    alphas,
    betas,
    center=None,
    batched: bool | None = None,
) -> dict:
    """The loss at center + a d1 + b d2 for every a in ``alphas`` and b in ``betas``.

    ``d1``, ``d2`` and ``center`` are flat vectors in the order of ``model.parameters()``
    (``center`` defaults to the model's parameters). Returns ``alphas``, ``betas``, ``loss``
    of shape (len(betas), len(alphas)), ``center_loss`` (the loss at the centre), ``batched``
    and ``fallback_reason`` (see :func:`weight_landscape`). The model is not changed.
    """
    f = _loss_function(model, loss_fn, X, y)
    theta = f.theta if center is None else _vector(center, f.size, "center")
    d1, d2 = _vector(d1, f.size, "d1"), _vector(d2, f.size, "d2")
    alphas, betas = _grid(alphas, "alphas"), _grid(betas, "betas")
    loss, was_batched, reason = _plane(f, loss_fn, theta, d1, d2, alphas, betas, batched)
    return {
        "alphas": alphas,
        "betas": betas,
        "loss": loss,
        "center_loss": f.value(theta),
        "batched": was_batched,
        "fallback_reason": reason,
    }


# --- directions and paths ---------------------------------------------------------------------
def filter_normalized_directions(
    model, seed=0, ignore_biases: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Two random filter-normalised directions (Li et al., 2018), flat float64 vectors in the
    order of ``model.parameters()``.

    Each direction is Gaussian; each filter of a parameter with two or more dimensions (index
    along its first dimension: a row of a Linear weight, one output unit; an output channel of
    a convolution) is rescaled to the norm of the same filter in theta. Parameters with one
    dimension or none (biases, normalisation scales) get 0 with ``ignore_biases`` (Li et al.'s
    choice: the plane moves weights only); without it they get the parameter itself, as Li et
    al.'s code does (each entry a filter of size one, normalised to its own magnitude, with its
    sign). ``seed`` is an int or a ``numpy.random.Generator``; d1 is drawn whole, then d2; 1-D
    parameters draw nothing, so the weights' directions do not depend on ``ignore_biases``.
    """
    rng = np.random.default_rng(seed)
    params = [np.asarray(p.data, np.float64) for p in model.parameters()]
    if not params:
        raise ValueError("the model has no parameters")

    def draw() -> np.ndarray:
        parts = []
        for w in params:
            if w.ndim <= 1:
                parts.append(np.zeros(w.size) if ignore_biases else w.ravel().copy())
                continue
            d = rng.standard_normal(w.shape)
            dn = np.linalg.norm(d.reshape(len(d), -1), axis=1)
            wn = np.linalg.norm(w.reshape(len(w), -1), axis=1)
            scale = np.divide(wn, dn, out=np.zeros_like(wn), where=dn > 0)
            parts.append((d * scale.reshape(-1, *([1] * (w.ndim - 1)))).ravel())
        return np.concatenate(parts)

    return draw(), draw()


def project_path(thetas, center, d1, d2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates (a_t, b_t) of each path point in the plane center + a d1 + b d2.

    ``thetas`` of shape (n, P) (or one point of shape (P,)). Least squares on the displacement
    theta_t - center, so d1 and d2 need not be orthogonal (only independent). Returns ``a``,
    ``b`` and ``residual``, each of shape (n,): residual_t = |off-plane part| / |theta_t -
    center| (0 at the centre itself), the share of the displacement that the plane does not
    show: 0 for a point on the plane, near 1 for a path the plane misses.
    """
    T = np.asarray(thetas, np.float64)
    T = T[None] if T.ndim == 1 else T
    if T.ndim != 2:
        raise ValueError(f"thetas must have shape (n, P), got {T.shape}")
    P = T.shape[1]
    c = _vector(center, P, "center")
    D = np.stack([_vector(d1, P, "d1"), _vector(d2, P, "d2")], axis=1)
    if np.linalg.matrix_rank(D) < 2:
        raise ValueError("d1 and d2 are parallel (or zero): they span no plane")
    disp = T - c
    coef = np.linalg.lstsq(D, disp.T, rcond=None)[0]
    off = np.linalg.norm(disp - (D @ coef).T, axis=1)
    size = np.linalg.norm(disp, axis=1)
    residual = np.divide(off, size, out=np.zeros_like(off), where=size > 0)
    return coef[0], coef[1], residual


def pca_directions(thetas, center=None) -> tuple[np.ndarray, np.ndarray, float]:
    """The plane that holds the most of a path: the two leading right singular vectors of the
    displacements theta_t - center (``center`` defaults to the last point, the trained model),
    unit vectors. Returns ``(d1, d2, captured)``, ``captured`` the share of the summed squared
    displacement in the plane. Li et al. (section 7) take the PCA of the same matrix after
    centring its rows on their mean; here the displacements from the centre are kept, which
    is what :func:`project_path`'s residual measures."""
    T = np.asarray(thetas, np.float64)
    if T.ndim != 2 or T.shape[0] < 2:
        raise ValueError(f"thetas must have shape (n >= 2, P), got {T.shape}")
    c = T[-1] if center is None else _vector(center, T.shape[1], "center")
    _, s, vt = np.linalg.svd(T - c, full_matrices=False)
    if s.size < 2 or s[1] <= 1e-12 * s[0]:
        raise ValueError("the path moves along one line (or not at all): no second direction")
    return vt[0].copy(), vt[1].copy(), float((s[0] ** 2 + s[1] ** 2) / (s**2).sum())


def training_path(model, loss_fn, X, y, optimizer, steps: int, every: int = 1) -> np.ndarray:
    """Train ``model`` in place, full batch, and record its flat parameters (float64).

    ``optimizer`` is an optimizer over the model's parameters, or a function making one from
    them (``lambda ps: optim.SGD(ps, lr=0.1)``). Row 0 is the start, then every ``every``-th
    step, and always the last: shape (1 + ceil(steps / every), P). X and y are cast to the
    model's dtype (integer class labels stay integers).
    """
    params = list(model.parameters())
    if not params:
        raise ValueError("the model has no parameters")
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    if not isinstance(every, (int, np.integer)) or every < 1:
        raise ValueError(f"every must be an integer >= 1, got {every!r}")
    opt = optimizer if isinstance(optimizer, Optimizer) else optimizer(params)
    owned = {id(p) for p in params}
    if not any(id(p) in owned for g in opt.param_groups for p in g["params"]):
        raise ValueError("the optimizer holds none of the model's parameters")
    dtype = params[0].dtype
    Xt = Tensor(np.asarray(X), dtype=dtype)
    ya = np.asarray(y)
    yt = Tensor(ya, dtype=dtype) if ya.dtype.kind == "f" else Tensor(ya)

    def flat() -> np.ndarray:
        return np.concatenate([np.asarray(p.data, np.float64).ravel() for p in params])

    path = [flat()]
    for t in range(1, steps + 1):
        opt.zero_grad()
        loss_fn(model(Xt), yt).backward()
        opt.step()
        if t % every == 0 or t == steps:
            path.append(flat())
    return np.stack(path)
