"""``backend="native"``: a traced training step lowered to one function compiled by numba.

The trace (:mod:`.recorder`) holds every op the step ran with its operands, the backward
pass's decisions and the optimizer calls. This module lowers them to the source of one Python
function over arrays, calling the kernels of :mod:`.native_kernels`, and compiles it with
numba:

* forward: each op's ``lower`` (a method of its class) writes its kernel calls; every value
  lives in a slice of one work buffer kept between steps, so a step allocates nothing;
* backward: each node's ``lower_backward`` writes the gradient of each input straight where
  it belongs: a parameter's gradient into its home in the optimizer's flat buffer, another
  value's into the work buffer (a second contribution is added);
* the update: each optimizer's ``native_update`` names its kernel, the flat state arrays it
  updates and the scalars of this step (computed in Python, as eager execution does, so
  schedulers and state_dict see the same step counts).

A step lowers only when every part of it has a native form; otherwise :func:`lower` raises
:class:`NotLowerableError` naming the first part that has none, and the step is replayed with
NumPy instead. The source is written to the cache folder under a name made from its digest
(which covers the shapes, the model and the kernels' source), so numba's on-disk cache
(``cache=True``) serves an unchanged step in a new process without compiling it again.

Values are named after what made them: ``linear1``, ``relu2``, ``g_linear1`` (its gradient),
``p_0_weight`` (the parameter ``0.weight``), ``a0`` (the step's first argument).
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np

from gradstep.tensor import Tensor
from gradstep.tracing.ir import Backward, Call, Op, fresh_name
from gradstep.tracing.native_program import NativeProgram, _numba_blas, cache_dir


class NotLowerableError(Exception):
    """A part of the step has no native form (the message names it)."""


def available() -> bool:
    """Whether numba can be imported (``pip install gradstep[native]``)."""
    return importlib.util.find_spec("numba") is not None


class Val:
    """A value of the native step: the name of its local variable, its shape and dtype."""

    __slots__ = ("name", "shape", "dtype")

    def __init__(self, name: str, shape: tuple, dtype) -> None:
        self.name, self.shape, self.dtype = name, tuple(shape), np.dtype(dtype)

    def __str__(self) -> str:
        return self.name

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)


class Lowering:
    """What an op's ``lower``/``lower_backward`` talks to: buffers, statements, kept values."""

    def __init__(self, dtype) -> None:
        self.dtype = np.dtype(dtype)
        self.views: list[str] = []  # work-buffer views, made at the top of the function
        self.body: list[str] = []
        self.work = 0  # elements of the work buffer used so far
        self.counts: dict[str, int] = {}
        self.kept: dict[int, dict] = {}
        self.where: dict[str, tuple] = {}  # buffer name -> (offset in work, shape)
        self.largest_matmul = 0  # multiply-adds of the step's largest matrix product
        self.checks: list[str] = []  # messages of the value checks (status codes 1, 2, ...)

    def name(self, hint: str) -> str:
        """A fresh local name of the native step (see ``ir.fresh_name``)."""
        return fresh_name(self.counts, hint)

    def buffer(self, shape, hint: str) -> Val:
        """A slice of the work buffer, of the step's dtype, for one value."""
        v = Val(self.name(hint), shape, self.dtype)
        n = v.size
        self.views.append(f"{v} = work[{self.work}:{self.work + n}].reshape({tuple(v.shape)!r})")
        self.where[v.name] = (self.work, v.shape)
        self.work += n
        return v

    def matmul(self, multiply_adds: int) -> None:
        """Note a matrix product of the step (the BLAS thread count is chosen from them)."""
        self.largest_matmul = max(self.largest_matmul, multiply_adds)

    def scalar(self, hint: str) -> Val:
        return Val(self.name(hint), (), self.dtype)

    def emit(self, line: str) -> None:
        self.body.append(line)

    def check(self, condition: str, message: str) -> None:
        """Stop the step before it changes anything when ``condition`` (a kernel call filling
        ``status``) is true; ``message`` is formatted with ``status[0]``, ``status[1]``."""
        self.checks.append(message)
        self.emit(f"if {condition}:\n        status[2] = {len(self.checks)}\n        return FAILED")

    def keep(self, fn, **values) -> None:
        self.kept[id(fn)] = values

    def kept_by(self, fn) -> dict:
        return self.kept[id(fn)]

    def unsupported(self, what: str) -> NotLowerableError:
        return NotLowerableError(what)


# --- parameters and optimizers ------------------------------------------------------------------
class _Group:
    """One optimizer param group's flat buffer as the native step sees it."""

    def __init__(self, index: int, opt, group: dict, flat) -> None:
        self.index, self.opt, self.group, self.flat = index, opt, group, flat
        self.data = f"D{index}"
        self.grad = f"G{index}"
        self.update = None  # (kernel, state keys, scalars function)


def _find_optimizers(tracer) -> list:
    from gradstep.optim.optimizer import Optimizer

    opts = []
    for st in tracer.lines:
        target = st.args[0] if isinstance(st, Call) and st.args else None
        if isinstance(target, Optimizer) and all(o is not target for o in opts):
            opts.append(target)
    return opts


# --- the lowering -------------------------------------------------------------------------------
#: ``backend="auto"`` replays a step whose largest matrix product has at least this many
#: multiply-adds (512x512x64) when BLAS runs on more than one thread: there numba's BLAS
#: (SciPy's OpenBLAS) is the slower one. Measured in fit at benchmark (c) (429-512x3-41, batch
#: 512): 45 steps/s native against 56 replayed at 2 threads, 46 against 35 at 1 thread
#: (benchmarks/fit_compile.py); a 512-cube float32 product alone takes 1.75 ms in numba's BLAS
#: and 1.39 ms in NumPy's at 2 threads.
AUTO_MAX_PRODUCT = 1 << 24


def _blas_threads() -> int:
    """The BLAS thread count the user has now: NumPy's BLAS's (a native step's large products
    follow it), else numba's, else 2 (cannot be told)."""
    from gradstep.tracing.native_program import _numpy_blas

    blas = _numpy_blas() or _numba_blas()
    return blas.get_num_threads() if blas is not None else 2


def lower(
    tracer, kinds: list, kw_names: list, returned: list, name: str, auto: bool = False
) -> NativeProgram:
    """Lower a finished trace to a compiled native step; raises NotLowerableError (also, with
    ``auto``, for a step of large matrix products on several threads: see AUTO_MAX_PRODUCT)."""
    if tracer.problem is not None:
        raise NotLowerableError(tracer.problem)
    low = _Lowerer(tracer)
    for entry in tracer.lines:
        if isinstance(entry, Backward):
            low.backward(entry)
        elif isinstance(entry, Op):
            low.op(entry)
        elif isinstance(entry, Call):
            low.call(entry.func, entry.args, entry.kwargs)
        else:
            raise NotLowerableError(f"a statement with no native form ({entry.code[:40]})")
    results = low.finish(returned)
    if auto and low.L.largest_matmul >= AUTO_MAX_PRODUCT and _blas_threads() > 1:
        raise NotLowerableError(
            f"its largest matrix product ({low.L.largest_matmul:,} multiply-adds) runs faster "
            f"on NumPy's BLAS at {_blas_threads()} threads (backend='native', or fit's "
            "compile='native', insists)"
        )
    return NativeProgram(
        low.L,
        low.head,
        low.groups,
        kinds,
        kw_names,
        low.consts,
        results,
        low.before,
        low.after,
        name,
    )


class _Lowerer:
    """The state of one lowering: the optimizers' flat groups and where each parameter and
    its gradient live in them, the native value of each traced one, what has happened yet."""

    def __init__(self, tracer) -> None:
        self.tracer = tracer
        self.opts = _find_optimizers(tracer)
        self.groups: list[_Group] = []
        self.slots: dict = {}  # id(param) -> (group, offset, shape)
        for opt in self.opts:
            for group, flat in zip(opt.param_groups, opt._flat):
                if flat is None:
                    raise NotLowerableError(
                        "an optimizer group whose parameters cannot share one buffer"
                    )
                g = _Group(len(self.groups), opt, group, flat)
                self.groups.append(g)
                offset = 0
                for p, v, _ in flat.slots:
                    self.slots[id(p)] = (g, offset, v.shape)
                    offset += v.size
        dtypes = {g.flat.data.dtype for g in self.groups}
        if len(dtypes) != 1:
            raise NotLowerableError("no optimizer, or optimizers of different dtypes, in the step")
        self.L = Lowering(dtypes.pop())
        self.vals: dict = {}  # replay expression (or "param<id>") -> native value
        self.consts: list = []  # tensors/arrays made before the step, passed each call
        self.head: list[str] = []  # the parameters' and their gradients' views
        self.grads_home: dict = {}  # id(param) -> Val of its gradient slice
        self.written: set = set()  # parameters whose gradient this step has written
        self.zeroed: set = set()
        self.stepped: set = set()
        self.before: list = []
        self.after: list = []
        self.seen_op = self.backward_done = False

    def operand(self, obj):
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        e = self.tracer.expr.get(id(obj))
        arr = obj.data if isinstance(obj, Tensor) else obj
        if not isinstance(arr, np.ndarray):
            raise NotLowerableError(f"an operand of type {type(obj).__name__}")
        if e is not None and e.startswith("a") and e not in self.vals:  # a step argument
            self.vals[e] = Val(e, arr.shape, arr.dtype)
        if e is not None and e in self.vals:
            return self.vals[e]
        if isinstance(obj, Tensor) and id(obj) in self.slots:
            return self.param(obj)
        v = Val(f"c{len(self.consts)}", arr.shape, arr.dtype)  # a fixed tensor or array
        self.consts.append(obj)
        if e is not None:
            self.vals[e] = v
        return v

    def param(self, p) -> Val:
        key = f"param{id(p)}"
        if key not in self.vals:
            g, offset, shape = self.slots[id(p)]
            # the replay's name for it (p_0_weight), made unique here too: two modules
            # called directly both have a "weight"
            v = Val(self.L.name(self.tracer.leaf.get(id(p)) or "p"), shape, p.data.dtype)
            self.head.append(f"{v} = {g.data}[{offset}:{offset + v.size}].reshape({shape!r})")
            self.vals[key] = v
        return self.vals[key]

    def op(self, st: Op) -> None:
        name = type(st.fn).__name__
        if self.backward_done:
            raise NotLowerableError(f"an op ({name}) after backward()")
        lower_fn = getattr(st.fn, "lower", None)
        if lower_fn is None:
            raise NotLowerableError(f"op {name} has no native kernel")
        args = [self.operand(a) for a in st.args]
        try:
            self.vals[st.writes] = lower_fn(self.L, *args, **st.params)
        except TypeError as e:  # a parameter its lowering does not take
            raise NotLowerableError(f"op {name} with {sorted(st.params)}: {e}") from None
        self.seen_op = True

    def call(self, func, args, kwargs) -> None:
        target = args[0] if args else None
        if target in self.opts and func.__name__ == "zero_grad":
            if self.backward_done:
                raise NotLowerableError("zero_grad() between backward() and step()")
            self.zeroed.update(id(p) for g in target.param_groups for p in g["params"])
        elif target in self.opts and func.__name__ == "step":
            if not self.backward_done:
                raise NotLowerableError("optimizer.step() before backward()")
            if id(target) in self.stepped:  # its scalars are computed once a call
                raise NotLowerableError("optimizer.step() twice in one step")
            if self.after:
                what = getattr(self.after[0][0], "__qualname__", "a call")
                raise NotLowerableError(f"{what}() between backward() and step()")
            for g in self.groups:
                if g.opt is target:
                    _lower_update(self.L, g)
            self.stepped.add(id(target))
        elif not self.seen_op:
            self.before.append((func, args, kwargs))
        elif self.backward_done:  # after the update (or after backward, with no update)
            self.after.append((func, args, kwargs))
        else:
            what = getattr(func, "__qualname__", repr(func))
            raise NotLowerableError(f"{what}() inside the step's computation")

    def backward(self, entry) -> None:
        if self.backward_done:
            raise NotLowerableError("two backward passes in one step")
        _lower_backward(self, entry)
        self.backward_done = True

    def finish(self, returned: list) -> list:
        if not self.backward_done:
            raise NotLowerableError("a step without backward()")
        if any(id(p) not in self.written for g in self.groups for p in g.flat.params):
            raise NotLowerableError("a parameter of the optimizer that gets no gradient")
        if any(e not in self.vals for e in returned):
            raise NotLowerableError("the step returns a value the native step does not compute")
        return [self.vals[e] for e in returned]


def _lower_backward(low: _Lowerer, entry) -> None:
    """Each recorded node's ``lower_backward``, writing every input's gradient where it goes:
    a parameter's into its home in the flat gradient buffer, any other's into the work
    buffer; a second contribution goes to a temporary and is added."""
    L, tracer, vals = low.L, low.tracer, low.vals
    root_expr, seed = entry.root, entry.seed
    root = vals.get(root_expr)
    if root is None or root.ndim != 0 or seed.startswith("_array("):
        raise NotLowerableError("backward() of a non-scalar or with a given gradient")
    g_root = L.scalar("g_" + root.name)
    L.emit(f"{g_root} = _T(1)")
    grads = {root_expr: g_root}
    pending: list = []  # (node, its output's expression, its input records)
    for node_step, grad_steps in entry.groups():
        if any(g.reshaped for g in grad_steps):
            raise NotLowerableError("a gradient summed over a broadcast dimension")
        records = [(g.kind, g.tensor, g.pos) for g in grad_steps]
        pending.append((node_step.fn, tracer.expr.get(id(node_step.tensor)), records))
    for node, e_out, records in pending:
        g = grads.get(e_out)
        if g is None:
            raise NotLowerableError("backward() through ops that ran before the step")
        dests: list = [None] * len(node.needs_input_grad)
        post: list = []
        for kind, t, pos in records:
            if kind == "leaf":
                slot = low.slots.get(id(t))
                if slot is None or id(t) not in low.zeroed:
                    raise NotLowerableError(
                        "a gradient for a tensor outside the optimizer's buffers, or one that "
                        "accumulates across steps (no zero_grad() in the step)"
                    )
                home = low.grads_home.get(id(t))
                if home is None:
                    grp, offset, shape = slot
                    home = Val("g_" + vals[f"param{id(t)}"].name, shape, L.dtype)
                    low.head.append(
                        f"{home} = {grp.grad}[{offset}:{offset + home.size}].reshape({shape!r})"
                    )
                    low.grads_home[id(t)] = home
                if id(t) in low.written:
                    tmp = L.buffer(home.shape, "g_tmp")
                    dests[pos] = tmp
                    post.append(f"add_into({home}, {tmp})")
                else:
                    dests[pos] = home
                    low.written.add(id(t))
            else:
                e = tracer.expr[id(t)]
                v = vals[e]
                if kind == "first":
                    d = L.buffer(v.shape, "g_" + v.name) if v.ndim else L.scalar("g_" + v.name)
                    grads[e] = dests[pos] = d
                else:
                    if v.ndim == 0:
                        raise NotLowerableError("a scalar used twice in the graph")
                    tmp = L.buffer(v.shape, "g_tmp")
                    dests[pos] = tmp
                    post.append(f"add_into({grads[e]}, {tmp})")
        lower_b = getattr(node, "lower_backward", None)
        if lower_b is None:
            raise NotLowerableError(f"op {type(node).__name__} has no native backward")
        lower_b(L, g, dests)
        for line in post:
            L.emit(line)


def _lower_update(L, g: _Group) -> None:
    update = g.opt.native_update(g.group, g.flat)
    if update is None:
        raise NotLowerableError(f"{type(g.opt).__name__} with these settings has no native update")
    kernel, keys, _ = update
    g.update = update
    n_scalars = len(update[2](dry=True))
    states = [f"S{g.index}_{k}" for k in range(len(keys))]
    scalars = [f"_T(Q{g.index}[{k}])" for k in range(n_scalars)]
    L.emit(f"{kernel}({', '.join([g.data, g.grad, *states, *scalars])})")


__all__ = ["NativeProgram", "NotLowerableError", "available", "cache_dir", "lower", "_numba_blas"]
