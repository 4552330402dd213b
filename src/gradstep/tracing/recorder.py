"""The tracer: while a step runs eagerly once, it records every array call as a statement.

The engine calls its ``record_*`` hooks (see ``autograd._tracer``); each value gets the name of
a local variable of the replay function, or becomes a named constant. :mod:`.codegen` turns the
records into source.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np

from gradstep import autograd
from gradstep.tensor import Tensor


class Tracer:
    """Collects the statements of a replay function while the step runs eagerly once."""

    def __init__(self) -> None:
        self.depth = 0  # > 0 inside a replayable call: nothing there is recorded
        self.keep: list = []  # every object seen: their ids stay unique during the trace
        self.expr: dict[int, str] = {}  # id(object) -> expression of its array in the replay
        self.leaf: dict[int, str] = {}  # id(tensor) -> expression of the tensor object itself
        self.lines: list = []  # (code, names read, name written) or a pending backward
        self.namespace: dict = {
            "_asarray": np.asarray,
            "_ones_like": np.ones_like,
            "_array": np.array,
            "_unbroadcast": autograd.unbroadcast,
            "_acc": autograd._accumulate_leaf,
            "_acch": autograd._accumulate_home,
        }
        self.modules: dict[int, object] = {}
        self.functions: list = []  # (Function instance, needs_input_grad) to restore afterwards
        self.op_lines: dict = {}  # index in self.lines -> the Function instance it calls
        self.op_args: dict = {}  # index in self.lines -> (the op's arguments, its params)
        self.call_args: dict = {}  # index in self.lines -> (func, args, kwargs) of a call
        self.op_bytes: dict = {}  # id(Function instance) -> bytes of its output
        self.saved_bytes: dict = {}  # id(Function instance) -> bytes of what it saved
        self.accumulated: set = set()  # names of the leaf tensors the backward fills
        self.assigned: list = []  # arrays the step assigns as a .grad (they escape it)
        self.homed: set = set()  # (id(op), input position) whose gradient goes to its home
        self.problem: str | None = None
        self._n = 0

    # --- names ----------------------------------------------------------------------------------
    def name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def constant(self, value) -> str:
        name = self.name("K")
        self.namespace[name] = value
        return name

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
            name = self.constant(obj)
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

    def names_sharing(self, arrays) -> set:
        """Names of the recorded values whose memory ``arrays`` share (as views of them)."""
        out = set()
        for a in arrays:
            while a is not None:
                e = self.expr.get(id(a))
                if e is not None:
                    out.add(e)
                a = getattr(a, "base", None)
        return out

    def emit(self, code: str, reads: str = "", writes: str | None = None) -> None:
        self.lines.append((code, reads, writes))

    def fail(self, reason: str) -> None:
        if self.problem is None:
            self.problem = reason

    # --- hooks called by the engine ------------------------------------------------------------
    def record_op(self, fn, args, params, result, generic) -> None:
        if self.depth:
            return
        self.functions.append((fn, fn.needs_input_grad))
        operands = [self.operand(a) for a in args]
        operands += [f"{k}={self.constant(v)}" for k, v in params.items()]
        call = f"{self.constant(fn.forward)}({', '.join(operands)})"
        if generic:
            call = f"_asarray({call})"
        out = self.name("v")
        self.register(result, out)
        self.emit(f"{out} = {call}", " ".join(operands), out)
        self.op_lines[len(self.lines) - 1] = fn
        self.op_args[len(self.lines) - 1] = (tuple(args), dict(params), result)
        self.op_bytes[id(fn)] = result.data.nbytes
        self.saved_bytes[id(fn)] = sum(getattr(v, "nbytes", 0) for v in vars(fn).values())

    def record_derived(self, f, *operands_and_result) -> None:
        """``result = f(*operands)`` computed outside the graph (conversions, comparisons)."""
        if self.depth:
            return
        *operands, result = operands_and_result
        refs = [self.ref(o) for o in operands]
        if all(r is None for r in refs):
            return  # made from constants only: it is a constant too
        ops = [r if r is not None else self.constant(o) for r, o in zip(refs, operands)]
        out = self.name("v")
        self.register(result, out)
        self.emit(f"{out} = {self.constant(f)}({', '.join(ops)})", " ".join(ops), out)

    def record_host_read(self, t, what: str) -> None:
        if self.depth:
            return
        if id(t) in self.expr or t.requires_grad:
            self.fail(f"the step reads a tensor's value ({what}), so it may depend on the data")

    def record_inplace(self, what: str) -> None:
        if not self.depth:  # NumPy writes into an array: nothing a replay would repeat
            self.fail(f"the step changes a tensor in place ({what}); use a gs.replayable function")

    def record_grad_read(self, t) -> None:
        if not self.depth:  # a replay would read the gradient of the trace's run
            self.fail("the step reads a .grad (a replay cannot follow Python code on it)")

    def record_set_grad(self, t, value) -> None:
        if self.depth:
            return
        self.ref(t)  # a tensor made before the step becomes a named constant
        target = self.leaf.get(id(t))
        if target is None:
            self.fail("the step assigns .grad of a tensor it created")
            return
        v = self.operand(value)
        self.assigned.append(value.data if isinstance(value, Tensor) else value)
        self.emit(f"{target}.grad = {v}", v)

    def record_module(self, module) -> None:
        if not self.depth:
            self.modules[id(module)] = module

    def record_call(self, func, args, kwargs):
        # Iterators (model.parameters()) would be exhausted after one replay: keep a list.
        args = tuple(list(a) if isinstance(a, Iterator) else a for a in args)
        kwargs = {k: list(v) if isinstance(v, Iterator) else v for k, v in kwargs.items()}
        name = self.constant(functools.partial(func, *args, **kwargs))
        self.emit(f"{name}()")
        self.call_args[len(self.lines) - 1] = (func, args, kwargs)
        self.depth += 1
        try:
            return func(*args, **kwargs)
        finally:
            self.depth -= 1

    def record_backward(self, root, given):
        if self.depth:
            return None
        root_expr = self.expr.get(id(root))
        if root_expr is None or root._node is None:
            self.fail("backward() from a tensor that the step did not compute")
            return []
        if given is None:  # a fresh copy (a leaf may adopt it) of ones made once: faster
            seed = f"{self.constant(np.ones_like(root.data))}.copy()"
        else:
            seed = f"_array({self.operand(given)}, dtype={self.constant(root.dtype)})"
        rec: list = []
        self.lines.append(("backward", root_expr, seed, rec))
        return rec
