"""Differential fuzz of the backward pass against PyTorch: gradient accumulation and buffer reuse.

The backward pass (``gradstep.autograd.backward``) lets a leaf *adopt* a fresh gradient array as
its ``.grad`` instead of copying it, and later ``+=`` into it. That is only sound when no other
tensor can still see that array: an op may pass its upstream gradient on unchanged (Add gives
the same array to both inputs, the root's seed reaches a leaf added to the loss), a gradient
may wait for more contributions while a leaf already holds it, or one array may be handed to
two leaves. The engine's rule is local: a leaf adopts an array only when its op made it fresh
(not the upstream gradient the op was given, not a view); a replayed step
(``gradstep.compile``) runs the same decisions from generated code. A mistake in either shows
up as a gradient that is right in simple graphs and wrong (or silently shared between leaves)
in a few shapes of graph.

So this file builds 400 seeded random graphs over 2 to 4 float64 leaves whose shapes broadcast
together ((3, 4), (1, 4), (4,), (3, 1), (); most leaves of a graph share one) and an optional
constant, with 3 to 10 ops: the arithmetic ops with broadcasting, division, unary functions,
reductions with and without ``keepdim``, reshape/transpose round trips, slices, gathers with
repeated indices, ``cat`` and ``stack`` (a tensor beside itself included), ``matmul``, values
used many times (fan-out) and leaves used again late, beside a value made before the leaf's
last use (``handoff`` makes that pattern on purpose: an Add hands a leaf a sum of gradients
that another tensor still waits for, and the backward pass then adds into the leaf before that
tensor's node runs). The loss weights the values nothing else used by fixed random weights (so
upstream gradients are not all ones) and adds some 0-d values (a 0-d leaf, maybe twice) as
they are, summed from the left or the right, so the root's seed reaches leaves and the graph
through Adds unchanged. The same op list is replayed in PyTorch and every leaf's gradient is
compared, ``None`` included:

* eagerly, then a second backward pass that accumulates (after a rebuilt forward or with
  ``retain_graph=True``; some leaves' gradients set to None in between), checking that no two
  leaves' gradients share memory (nor one with an input), that each accumulated gradient is
  twice the first, and that a gradient set to None is never written to again;
* through ``gradstep.compile``, three calls (one trace, two replays) with new argument values
  each time, the step setting some leaves' gradients to None and letting the others accumulate
  across calls (some of those reset between calls, outside the step), with the same checks; in
  three graphs of four the replay drops every node's saved arrays after its backward, as a big
  model's would be, although the arrays are small. Most graphs must really replay, so the test
  cannot silently stay eager.

The generator's mix was tuned so that each of these one-line breaks of the engine fails at
least ten of the graphs (most fail dozens): a leaf adopting an array in ``handed`` (eager or
replay) or a view, a node's gradient kept out of ``handed`` while the node runs, the replay
leaving the seed, a sum or a first gradient out of ``handed``.
"""

import warnings

import numpy as np
import pytest
import torch

import gradstep as gs
from gradstep.tracing import codegen

N_GRAPHS = 400
CHUNK = 50
LEAF_SHAPES = [(3, 4), (1, 4), (4,), (3, 1), ()]
BOUND = 50.0  # every value stays within this: no overflow, no NumPy warning
RTOL, ATOL = 1e-10, 1e-12

BINARY = ["add", "sub", "mul", "div", "cat", "stack", "matmul"]
BINARY_P = [0.25, 0.2, 0.15, 0.1, 0.1, 0.1, 0.1]  # Add and Sub hand their gradient on as it is
UNARY = [
    "neg",
    "tanh",
    "sigmoid",
    "relu",
    "exp_tanh",
    "add_scalar",
    "mul_scalar",
    "rsub_scalar",
    "sum_axis",
    "sum_all",
    "mean_axis",
    "mean_all",
    "transpose",
    "flatten",
    "reshape_round_trip",
    "transpose_round_trip",
    "slice",
    "gather",
    "square",
    "fan",
]


def _apply(lib, kind, args, params):
    """One op of a graph, on gradstep or torch tensors (``lib`` is the module)."""
    if kind == "add":
        return args[0] + args[1]
    if kind == "sub":
        return args[0] - args[1]
    if kind == "mul":
        return args[0] * args[1]
    if kind == "div":
        return args[0] / (args[1] * args[1] + 1.0)
    if kind == "handoff":  # x first: its Add hands x the gradient that b waits for, a sum of
        x, y = args  # two (v is used twice), and `early`'s backward then adds into x
        b = y.tanh()
        early = x * 0.5
        v = x + b
        return v * early + v.tanh()
    if kind == "cat":
        return lib.cat([args[0], args[1]], dim=0)
    if kind == "stack":
        return lib.stack([args[0], args[1]], dim=params["dim"])
    if kind == "matmul":
        return args[0] @ args[1]
    (x,) = args
    if kind == "neg":
        return -x
    if kind == "square":
        return x * x
    if kind == "fan":  # x used twice in one expression: its gradient is a sum of two
        return x * params["c"] + x if params["mul_first"] else x + x * params["c"]
    if kind in ("tanh", "sigmoid", "relu"):
        return getattr(x, kind)()
    if kind == "exp_tanh":
        return x.tanh().exp()
    if kind == "add_scalar":
        return x + params["c"]
    if kind == "mul_scalar":
        return x * params["c"]
    if kind == "rsub_scalar":
        return params["c"] - x
    if kind == "sum_axis":
        return x.sum(dim=params["dim"], keepdim=params["keep"])
    if kind == "sum_all":
        return x.sum()
    if kind == "mean_axis":
        return x.mean(dim=params["dim"], keepdim=params["keep"])
    if kind == "mean_all":
        return x.mean()
    if kind == "transpose":
        return x.transpose(0, 1)
    if kind == "flatten":
        return x.reshape(-1)
    if kind == "reshape_round_trip":
        return x.reshape(-1).reshape(params["shape"])
    if kind == "transpose_round_trip":
        return (x.transpose(0, 1) * 1.0).transpose(0, 1)
    if kind == "slice":
        return x[params["start"] :] if params["axis"] == 0 else x[:, params["start"] :]
    if kind == "gather":
        return x[params["index"]]
    raise AssertionError(kind)


def _params(rng, kind, shape):
    """Parameters for a unary op on a value of ``shape``, or None if the op does not fit it."""
    nd = len(shape)
    if kind in ("add_scalar", "mul_scalar", "rsub_scalar"):
        return {"c": float(np.round(rng.uniform(-1.5, 1.5), 3))}
    if kind == "fan":
        return {
            "c": float(np.round(rng.uniform(-1.0, 1.0), 3)),
            "mul_first": bool(rng.random() < 0.5),
        }
    if kind in ("sum_axis", "mean_axis"):
        return {"dim": int(rng.integers(nd)), "keep": bool(rng.random() < 0.6)} if nd else None
    if kind in ("transpose", "transpose_round_trip"):
        return {} if nd == 2 else None
    if kind == "reshape_round_trip":
        return {"shape": shape} if nd else None
    if kind == "flatten":
        return {} if nd == 2 else None
    if kind == "slice":
        axes = [a for a in range(nd) if shape[a] >= 2]
        if not axes:
            return None
        axis = int(rng.choice(axes))
        return {"axis": axis, "start": int(rng.integers(1, shape[axis]))}
    if kind == "gather":  # repeated rows: the gradient adds into the same row twice
        if not nd:
            return None
        n = int(rng.integers(2, 5))
        index = rng.integers(0, shape[0], size=n)
        index[1] = index[0]
        return {"index": [int(i) for i in index]}
    return {}


def _binary_fits(kind, a, b):
    if kind in ("add", "sub", "mul", "div"):
        try:
            out = np.broadcast_shapes(a, b)
        except ValueError:
            return False
        return len(out) <= 2
    if kind == "handoff":
        return _binary_fits("add", a, b) and np.broadcast_shapes(a, b) == a
    if kind == "cat":
        return len(a) >= 1 and len(a) == len(b) and a[1:] == b[1:]
    if kind == "stack":
        return len(a) <= 1 and a == b
    if kind == "matmul":
        return len(a) in (1, 2) and len(b) in (1, 2) and a[-1] == b[0]
    raise AssertionError(kind)


class Graph:
    """A random op list over leaves and an optional constant, built once with torch values."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.seed = seed
        n_leaves = int(rng.integers(2, 5))
        # most leaves share one shape: an Add then hands its gradient to a leaf unreduced
        main = LEAF_SHAPES[int(rng.integers(len(LEAF_SHAPES)))]
        shapes = [
            main if rng.random() < 0.6 else LEAF_SHAPES[int(rng.integers(len(LEAF_SHAPES)))]
            for _ in range(n_leaves)
        ]
        self.leaves = [rng.uniform(-1.0, 1.0, s) for s in shapes]
        self.has_const = bool(rng.random() < 0.5)
        const_shape = LEAF_SHAPES[int(rng.integers(len(LEAF_SHAPES)))]
        self.const = rng.uniform(-1.0, 1.0, const_shape) if self.has_const else None
        values = [torch.tensor(v) for v in self.leaves]
        if self.has_const:
            values.append(torch.tensor(self.const))
        self.n_inputs = len(values)
        on_leaf = [True] * n_leaves + [False] * self.has_const  # depends on a leaf
        self.ops: list = []  # (kind, value indices, params)
        used = [0] * len(values)
        self._boost = [False] * len(values)
        n_ops = int(rng.integers(3, 11))
        attempts = 0
        while len(self.ops) < n_ops and attempts < 500:
            attempts += 1
            kind, args, params = self._draw(rng, values, used)
            if kind is None:
                continue
            out = _apply(torch, kind, [values[i] for i in args], params)
            if out.abs().max() > BOUND or out.numel() > 64 or out.ndim > 2:
                continue
            if kind == "relu" and (values[args[0]].abs() < 1e-6).any():
                continue  # no kink at 0: the two libraries may pick different subgradients
            self.ops.append((kind, args, params))
            for i in args:
                used[i] += 1
            values.append(out)
            used.append(0)
            # a leaf's Add, used again: the leaf is handed a sum of gradients as it is
            self._boost.append(kind in ("add", "sub") and args[0] < n_leaves)
            on_leaf.append(any(on_leaf[i] for i in args))
        self.const_used = self.has_const and used[n_leaves] > 0
        # the loss: every value nothing else used (some dropped: dead branches), weighted
        n = len(values)
        last = n - 1
        sinks = [i for i in range(self.n_inputs, n) if used[i] == 0]
        sinks = [i for i in sinks if i == last or rng.random() < 0.8]
        # 0-d values are sometimes added to the loss as they are: the root's seed (or a sum of
        # gradients) then reaches the graph and its leaves through Adds, unchanged
        self.plain = [i for i in sinks if values[i].ndim == 0 and rng.random() < 0.7]
        self.sinks = [i for i in sinks if i not in self.plain]
        extra = [i for i in range(n) if values[i].ndim == 0 and on_leaf[i]]
        if extra and rng.random() < 0.7:  # a 0-d leaf (likelier), or a value used again
            leaves = [i for i in extra if i < n_leaves]
            pool = leaves if leaves and rng.random() < 0.6 else extra
            self.plain.append(int(rng.choice(pool)))
            if rng.random() < 0.4:  # twice: the seed reaches it twice through the Adds
                self.plain.append(self.plain[-1])
        if not any(on_leaf[i] for i in self.sinks + self.plain):
            self.sinks.append(0)  # the ops use the constant alone: the loss needs a leaf
        # the order of the loss's terms, and whether it is summed from the right: t0 + (t1 +
        # ...) hands the root's seed to t0 and on to the others through every Add
        self.order = [int(i) for i in rng.permutation(len(self.sinks) + len(self.plain))]
        self.from_right = bool(rng.random() < 0.5)
        self.sink_shapes = [tuple(values[i].shape) for i in self.sinks]
        self.weights = [rng.uniform(-1.0, 1.0, s) for s in self.sink_shapes]
        self.retain = bool(rng.random() < 0.3)  # second eager backward through the same graph
        self.reset = [bool(rng.random() < 0.3) for _ in self.leaves]  # grad = None in between
        self.step_resets = [bool(rng.random() < 0.7) for _ in self.leaves]  # in the compiled step
        self.clear_everywhere = seed % 4 != 0

    def _draw(self, rng, values, used):
        n = len(values)
        # recent values and leaves are likelier: chains, fan-out and leaves used again late
        n_leaves = len(self.leaves)
        weights = np.array([1.0 + i / n for i in range(n)])
        weights[:n_leaves] = [3.0 if used[k] == 0 else 2.0 for k in range(n_leaves)]
        weights += np.array([0.5 * min(u, 2) for u in used])  # already used: more fan-out
        weights += np.array([3.0 * (b and u < 2) for b, u in zip(self._boost, used)])
        weights /= weights.sum()

        def pick():
            return int(rng.choice(n, p=weights))

        r = rng.random()
        if r >= 0.55:
            kind = UNARY[int(rng.integers(len(UNARY)))]
            a = pick()
            params = _params(rng, kind, tuple(values[a].shape))
            return (None, None, None) if params is None else (kind, (a,), params)
        if r < 0.2 and n > self.n_inputs:
            # a leaf used again late, beside a value made before the leaf's last use: the Add
            # hands the leaf the gradient that value waits for, and the backward pass adds the
            # gradient of that last use into the leaf before it reaches the value
            kind = str(rng.choice(["add", "sub", "handoff"], p=[0.35, 0.25, 0.4]))
            a = int(rng.integers(n_leaves))
            uses = [j for j, (_, args, _) in enumerate(self.ops) if a in args]
            end = self.n_inputs + uses[-1] if uses else n
            b = (
                int(rng.integers(self.n_inputs, end))
                if end > self.n_inputs
                else int(rng.integers(n))
            )
            if kind != "handoff" and rng.random() < 0.25:
                a, b = b, a
        else:
            kind = str(rng.choice(BINARY, p=BINARY_P))
            a = pick()
            b = a if rng.random() < 0.15 else pick()  # one tensor as both operands
        sa, sb = tuple(values[a].shape), tuple(values[b].shape)
        if not _binary_fits(kind, sa, sb):
            return None, None, None
        params = {"dim": int(rng.integers(len(sa) + 1))} if kind == "stack" else {}
        return kind, (a, b), params

    def forward(self, lib, leaves, const, weights):
        """The loss from leaf tensors, the constant tensor (or None) and weight tensors."""
        values = list(leaves) + ([const] if self.has_const else [])
        for kind, args, params in self.ops:
            values.append(_apply(lib, kind, [values[i] for i in args], params))
        terms = [(values[i] * w).sum() for i, w in zip(self.sinks, weights)]
        plain = [values[i] for i in self.plain]
        terms = [(terms + plain)[i] for i in self.order]
        if self.from_right:
            terms.reverse()
        loss = terms[0]
        for term in terms[1:]:
            loss = term + loss if self.from_right else loss + term
        return loss


def _torch_grads(graph, weights, const=None):
    """Each leaf's gradient (None where it gets none) and the loss, from PyTorch."""
    leaves = [torch.tensor(v, requires_grad=True) for v in graph.leaves]
    c = None if graph.const is None else torch.tensor(graph.const if const is None else const)
    loss = graph.forward(torch, leaves, c, [torch.tensor(w) for w in weights])
    loss.backward()
    return [None if t.grad is None else t.grad.numpy() for t in leaves], loss.item()


def _grad(t):
    """A leaf's gradient as an array (``.grad`` may be an array or a Tensor view of one)."""
    return None if t.grad is None else np.asarray(t.grad)


def _assert_grads(graph, leaves, expected, when):
    for k, (t, want) in enumerate(zip(leaves, expected)):
        got = _grad(t)
        where = f"graph {graph.seed}, leaf {k}, {when}: {graph.ops}"
        if want is None:
            assert got is None, f"{where}: PyTorch gives no gradient, gradstep {got}"
            continue
        assert got is not None, f"{where}: gradstep gives no gradient"
        assert got.shape == want.shape and got.dtype == np.float64, where
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=where)


def _assert_no_shared_buffers(graph, leaves, others=(), when=""):
    """No two leaves' gradients share memory, nor a gradient with any leaf's data (or others)."""
    grads = [(k, _grad(t)) for k, t in enumerate(leaves) if t.grad is not None]
    for i, (k, g) in enumerate(grads):
        for k2, g2 in grads[i + 1 :]:
            assert not np.shares_memory(g, g2), f"graph {graph.seed}: leaves {k}, {k2} {when}"
        for arr in [t.data for t in leaves] + list(others):
            assert not np.shares_memory(g, arr), f"graph {graph.seed}: leaf {k}'s grad {when}"


def _gs(a):
    return gs.tensor(a, dtype=np.float64)


def _check_eager(graph):
    weights = graph.weights
    first, loss_ref = _torch_grads(graph, weights)
    leaves = [gs.tensor(v, dtype=np.float64, requires_grad=True) for v in graph.leaves]
    const = None if graph.const is None else _gs(graph.const)
    gs_weights = [_gs(w) for w in weights]
    loss = graph.forward(gs, leaves, const, gs_weights)
    assert abs(float(loss.data) - loss_ref) <= 1e-10 * (1 + abs(loss_ref)), graph.seed
    loss.backward(retain_graph=graph.retain)
    _assert_grads(graph, leaves, first, "first backward")
    others = [w.data for w in gs_weights] + ([] if const is None else [const.data])
    _assert_no_shared_buffers(graph, leaves, others, "after the first backward")
    kept = [None if t.grad is None else _grad(t).copy() for t in leaves]
    released = []  # (array, copy): gradients set to None, which nothing may write into again
    for t, k, reset in zip(leaves, kept, graph.reset):
        if reset and k is not None:
            released.append((_grad(t), k))
            t.grad = None
    if not graph.retain:
        loss = graph.forward(gs, leaves, const, gs_weights)
    loss.backward()
    expected = [
        None if g is None else (g if reset or k is None else 2 * g)
        for g, k, reset in zip(first, kept, graph.reset)
    ]
    _assert_grads(graph, leaves, expected, "second backward (accumulated)")
    for t, k, reset in zip(leaves, kept, graph.reset):
        if k is not None and not reset:  # twice the first (to rounding: summed in pieces)
            np.testing.assert_allclose(
                _grad(t), 2 * k, rtol=1e-12, atol=1e-13, err_msg=f"graph {graph.seed}"
            )
    _assert_no_shared_buffers(graph, leaves, others, "after the second backward")
    _assert_unchanged(graph, released)


def _assert_unchanged(graph, released):
    for k, (array, copy) in enumerate(released):
        np.testing.assert_array_equal(
            array, copy, err_msg=f"graph {graph.seed}: a gradient set to None changed ({k})"
        )


def _check_compiled(graph, monkeypatch):
    """Three calls of the compiled step; returns whether the later two were replays."""
    rng = np.random.default_rng(10_000 + graph.seed)
    leaves = [gs.tensor(v, dtype=np.float64, requires_grad=True) for v in graph.leaves]
    resets = graph.step_resets
    # the constant is an argument where an op uses it (else it would reach no op: eager)
    has_const = graph.const_used
    fixed = _gs(graph.const) if graph.has_const else None

    def step(*args):
        for t, reset in zip(leaves, resets):
            if reset:
                t.grad = None
        ws, const = (args[:-1], args[-1]) if has_const else (args, fixed)
        loss = graph.forward(gs, leaves, const, ws)
        loss.backward()
        return loss

    with monkeypatch.context() as m:
        if graph.clear_everywhere:
            m.setattr(codegen, "CLEAR_MIN_BYTES", 0)
        compiled = gs.compile(step)
        total = [None] * len(leaves)  # what each leaf that the step does not reset holds
        returned, held, released = [], [None] * len(leaves), []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("error")
            warnings.simplefilter("always", gs.CompileWarning)
            for call in range(3):
                for k, t in enumerate(leaves):
                    # reset outside the step: the replay finds no gradient, the next one does
                    outside = call > 0 and not resets[k] and rng.random() < 0.4
                    if outside:
                        t.grad = None
                        total[k] = None
                    if (outside or resets[k]) and held[k] is not None:
                        released.append(held[k])
                ws = [rng.uniform(-1.0, 1.0, s) for s in graph.sink_shapes]
                const = None if not has_const else rng.uniform(-1.0, 1.0, graph.const.shape)
                want, loss_ref = _torch_grads(graph, ws, const)
                for k, g in enumerate(want):
                    if g is not None:
                        total[k] = g if resets[k] or total[k] is None else total[k] + g
                args = [_gs(w) for w in ws] + ([_gs(const)] if has_const else [])
                loss = compiled(*args)
                returned.append((loss, float(loss.data)))
                assert abs(float(loss.data) - loss_ref) <= 1e-10 * (1 + abs(loss_ref))
                expected = [w if r else a for w, a, r in zip(want, total, resets)]
                _assert_grads(graph, leaves, expected, f"compiled call {call}")
                others = [a.data for a in args] + [r[0].data for r in returned]
                _assert_no_shared_buffers(graph, leaves, others, f"compiled call {call}")
                held = [None if t.grad is None else (_grad(t), _grad(t).copy()) for t in leaves]
        _assert_unchanged(graph, released)
        for loss, value in returned:  # a returned loss is not overwritten by later replays
            assert float(loss.data) == value, graph.seed
    assert compiled.traces == 1
    replayed = compiled.replays == 2
    assert replayed or caught, f"graph {graph.seed}: no replay and no CompileWarning"
    return replayed


@pytest.mark.parametrize("first", range(0, N_GRAPHS, CHUNK))
def test_random_graphs_match_pytorch_eager_and_compiled(first, monkeypatch):
    replays = 0
    for seed in range(first, first + CHUNK):
        graph = Graph(seed)
        _check_eager(graph)
        replays += _check_compiled(graph, monkeypatch)
    assert replays >= 0.8 * CHUNK, f"only {replays} of {CHUNK} graphs were replayed"


def test_the_fuzz_covers_what_it_claims():
    """The generator really produces the cases the file's docstring names."""
    graphs = [Graph(seed) for seed in range(N_GRAPHS)]
    kinds = {kind for g in graphs for kind, _, _ in g.ops}
    assert kinds == set(BINARY) | set(UNARY) | {"handoff"}
    same_operand = sum(any(len(a) == 2 and a[0] == a[1] for _, a, _ in g.ops) for g in graphs)
    leaf_reused = sum(
        any(sum(i == k for _, a, _ in g.ops for i in a) >= 2 for k in range(len(g.leaves)))
        for g in graphs
    )
    unused_leaf = sum(
        any(
            k not in g.sinks + g.plain and all(k not in a for _, a, _ in g.ops)
            for k in range(len(g.leaves))
        )
        for g in graphs
    )
    seeded_leaf = sum(any(i < len(g.leaves) for i in g.plain) for g in graphs)
    assert same_operand > 150 and leaf_reused > 300 and unused_leaf > 80 and seeded_leaf > 60
    assert sum(bool(g.plain) for g in graphs) > 150
    assert sum(g.retain for g in graphs) > 80 and sum(g.const_used for g in graphs) > 60
