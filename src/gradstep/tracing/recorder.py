"""The tracer: while a step runs eagerly once, it records every array call as a statement.

The engine calls its ``record_*`` hooks (see ``autograd._tracer``); each call becomes a record
of :mod:`.ir`, and each value the name of a local variable of the replay function (named after
the op that made it: ``linear1``) or of a constant (named after what it is: ``p_0_weight``,
``linear1_forward``, ``sgd_step``). :mod:`.codegen` and :mod:`.native` lower the records.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator

import numpy as np

from gradstep import autograd
from gradstep.tensor import Tensor
from gradstep.tracing.ir import Backward, Call, Op, Stmt, fresh_name


class Tracer:
    """Collects the statements of a replay function while the step runs eagerly once."""

    def __init__(self) -> None:
        self.depth = 0  # > 0 inside a replayable call: nothing there is recorded
        # The engine's hook (autograd._tracer) is one per process; what other threads do while
        # this step is traced (the lab's other tabs, a user's worker) is not part of it.
        self.thread = threading.get_ident()
        self.keep: list = []  # every object seen: their ids stay unique during the trace
        self.expr: dict[int, str] = {}  # id(object) -> expression of its array in the replay
        self.leaf: dict[int, str] = {}  # id(tensor) -> expression of the tensor object itself
        self.lines: list = []  # the trace: ir records (Stmt, Op, Call, Backward) in order
        self.namespace: dict = {
            "_asarray": np.asarray,
            "_ones_like": np.ones_like,
            "_array": np.array,
            "_unbroadcast": autograd.unbroadcast,
            "_acc": autograd._accumulate_leaf,
        }
        self.modules: dict[int, object] = {}
        self.functions: list = []  # (Function instance, needs_input_grad) to restore afterwards
        self.arguments: set = set()  # ids of the step's tensor arguments
        self.values: set = set()  # names of the replay's local values (not constants)
        self.accumulated: set = set()  # names of the leaf tensors the backward fills
        self._used: dict[str, int] = {}  # name hint -> how many names were made from it
        self._param_names: dict | None = None
        self.problem: str | None = None

    # --- names ----------------------------------------------------------------------------------
    def name(self, hint: str) -> str:
        """A fresh identifier of the replay made from ``hint`` (see ``ir.fresh_name``)."""
        return fresh_name(self._used, hint)

    def constant(self, value, hint: str = "k") -> str:
        name = self.name(hint)
        self.namespace[name] = value
        return name

    def value(self, hint: str) -> str:
        """A name for a local value of the replay."""
        name = self.name(hint)
        self.values.add(name)
        return name

    def param_name(self, t) -> str:
        """``p_<dotted name>`` of a parameter of a module the step called, else ``tensor``."""
        if self._param_names is None or id(t) not in self._param_names:
            self._param_names = {}
            for m in self.modules.values():  # the outermost module is recorded first
                for n, p in m.named_parameters():
                    self._param_names.setdefault(id(p), f"p_{n}")
        return self._param_names.get(id(t), "tensor")

    def register(self, obj, expr: str) -> None:
        self.keep.append(obj)
        self.expr[id(obj)] = expr
        if isinstance(obj, Tensor):
            self.keep.append(obj.data)
            self.expr[id(obj.data)] = expr

    def ref(self, obj) -> str | None:
        """The replay's expression for ``obj``; None if it is a constant."""
        e = self.expr.get(id(obj))
        if e is not None:
            return e
        if isinstance(obj, Tensor):  # made before the step: a parameter or a fixed tensor
            name = self.constant(obj, self.param_name(obj))
            self.leaf[id(obj)] = name
            self.register(obj, f"{name}.data")
            return f"{name}.data"
        if isinstance(obj, (tuple, list)) and obj:
            parts = [self.ref(o) for o in obj]
            if any(p is not None for p in parts):
                parts = [p if p is not None else self.constant(o) for p, o in zip(parts, obj)]
                body = ", ".join(parts) + ("," if len(parts) == 1 else "")
                return f"({body})" if isinstance(obj, tuple) else f"[{body}]"
        return None

    def operand(self, obj) -> str:
        e = self.ref(obj)
        return e if e is not None else self.constant(obj)

    def emit(self, code: str, reads: str = "", writes: str | None = None) -> None:
        self.lines.append(Stmt(code, reads, writes))

    def fail(self, reason: str) -> None:
        if self.problem is None:
            self.problem = reason

    # --- hooks called by the engine ------------------------------------------------------------
    def ignores(self) -> bool:
        """Whether the engine's current call is not part of the step: inside a replayable call,
        or made by another thread than the one tracing."""
        return bool(self.depth) or threading.get_ident() != self.thread

    def record_op(self, fn, args, params, result, generic) -> None:
        if self.ignores():
            return
        self.functions.append((fn, fn.needs_input_grad))
        out = self.value(type(fn).__name__)
        operands = [self.operand(a) for a in args]
        operands += [f"{k}={self.constant(v, f'{out}_{k}')}" for k, v in params.items()]
        call = f"{self.constant(fn.forward, f'{out}_forward')}({', '.join(operands)})"
        if generic:
            call = f"_asarray({call})"
        self.register(result, out)
        saved = sum(getattr(v, "nbytes", 0) for v in vars(fn).values())
        self.lines.append(
            Op(
                f"{out} = {call}",
                " ".join(operands),
                out,
                fn,
                tuple(args),
                dict(params),
                saved,
            )
        )

    def record_derived(self, f, *operands_and_result) -> None:
        """``result = f(*operands)`` computed outside the graph (conversions, comparisons)."""
        if self.ignores():
            return
        *operands, result = operands_and_result
        refs = [self.ref(o) for o in operands]
        if all(r is None for r in refs):
            return  # made from constants only: it is a constant too
        ops = [r if r is not None else self.constant(o) for r, o in zip(refs, operands)]
        hint = getattr(f, "__name__", type(f).__name__)
        out = self.value(hint)
        self.register(result, out)
        self.emit(f"{out} = {self.constant(f, hint)}({', '.join(ops)})", " ".join(ops), out)

    def record_host_read(self, t, what: str) -> None:
        if self.ignores():
            return
        if id(t) in self.expr or t.requires_grad:
            self.fail(f"the step reads a tensor's value ({what}), so it may depend on the data")

    def record_inplace(self, what: str) -> None:
        if not self.ignores():  # NumPy writes into an array: nothing a replay would repeat
            self.fail(f"the step changes a tensor in place ({what}); use a gs.replayable function")

    def record_grad_read(self, t) -> None:
        if not self.ignores():  # a replay would read the gradient of the trace's run
            self.fail("the step reads a .grad (a replay cannot follow Python code on it)")

    def record_set_grad(self, t, value) -> None:
        if self.ignores():
            return
        self.ref(t)  # a tensor made before the step becomes a named constant
        target = self.leaf.get(id(t))
        if target is None:
            self.fail("the step assigns .grad of a tensor it created")
            return
        v = self.operand(value)
        self.emit(f"{target}.grad = {v}", v)

    def record_module(self, module) -> None:
        if not self.ignores():
            self.modules[id(module)] = module

    def record_call(self, func, args, kwargs):
        if self.ignores():
            return func(*args, **kwargs)
        # Iterators (model.parameters()) would be exhausted after one replay: keep a list.
        args = tuple(list(a) if isinstance(a, Iterator) else a for a in args)
        kwargs = {k: list(v) if isinstance(v, Iterator) else v for k, v in kwargs.items()}
        owner = type(args[0]).__name__ if args and hasattr(args[0], func.__name__) else ""
        hint = f"{owner}_{func.__name__}" if owner else func.__name__
        name = self.constant(functools.partial(func, *args, **kwargs), hint)
        self.lines.append(Call(f"{name}()", "", None, func, args, kwargs))
        self.depth += 1
        try:
            return func(*args, **kwargs)
        finally:
            self.depth -= 1

    def record_backward(self, root, given):
        if self.ignores():
            return None
        root_expr = self.expr.get(id(root))
        if root_expr is None or root._node is None:
            self.fail("backward() from a tensor that the step did not compute")
            return Backward("", "")  # filled, never used
        if given is None:  # a fresh copy (a leaf may adopt it) of ones made once: faster
            seed = f"{self.constant(np.ones_like(root.data), 'ones')}.copy()"
        else:
            dtype = self.constant(root.dtype, "dtype")
            seed = f"_array({self.operand(given)}, dtype={dtype})"
        rec = Backward(root_expr, seed)
        self.lines.append(rec)
        return rec
