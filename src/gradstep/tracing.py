"""``gradstep.compile``: trace one training step once, then replay it as flat array calls.

A training step builds the same graph every time: the same ops on arrays of the same shapes.
Eager execution pays for that graph on every step (a Tensor and a node per op, a topological
sort, a dict of pending gradients). :func:`compile` runs the step once under a tracer, which
records each op's ``forward``, the backward pass's every decision (which node, which input,
where a broadcast gradient is summed back, which gradients add up), and each call to a
:func:`~gradstep.autograd.replayable` function (``optimizer.zero_grad()``, ``optimizer.step()``,
a scheduler's ``step()``, ``clip_grad_norm_``). It then writes those records as the body of one
Python function, with every array in a local variable, and calls that function from then on.

The replay calls the very same ``forward``/``backward`` methods on arrays in the same order as
eager execution, so its results are bit-identical to eager, in float32 and float64 alike; what
disappears is the graph construction around them.

What a trace cannot see, and what happens then:

* A new shape or dtype of an argument, a different Python scalar argument, grad mode, or a
  module switched between ``train()`` and ``eval()``: the step is traced again for that case
  (that call runs eagerly) and both traces are kept, up to ``max_traces``; beyond it the step
  runs eagerly with a one-line :class:`CompileWarning`.
* Python reading a tensor's value inside the step (``loss.item()``, ``float(t)``, ``if t:``,
  ``t.numpy()``): the step's control flow may depend on the data, so this case runs eagerly
  from then on, with a one-line warning. Return the loss tensor and call ``.item()`` outside.
* An array argument that no gradstep op ever receives (the step changed it with NumPy first):
  NumPy code is invisible to the tracer, so this case also runs eagerly, with a warning.
* Python state the step reads that is none of the above (a counter, a global flag, ``.data``
  of a tensor, code between ops that is not ``replayable``): frozen as it was during the trace,
  as in ``jax.jit`` or CUDA graphs. Keep such logic outside the compiled step.

Tensors that a compiled step returns are detached from any graph, on the first call too: the
backward belongs inside the step. Gradient arrays are fresh each step, as in eager mode.
"""

from __future__ import annotations

import builtins
import functools
import numbers
import warnings
from collections.abc import Iterator

import numpy as np

from gradstep import autograd
from gradstep.tensor import Tensor

__all__ = ["CompileWarning", "CompiledStep", "compile"]


class CompileWarning(UserWarning):
    """A compiled step runs eagerly for a case it cannot replay (the message says why)."""


class _NotReplayableError(Exception):
    """Raised inside the tracer when the trace cannot be replayed; caught by CompiledStep."""


class _Tracer:
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
        }
        self.modules: dict[int, object] = {}
        self.functions: list = []  # (Function instance, needs_input_grad) to restore afterwards
        self.op_lines: dict = {}  # index in self.lines -> the Function instance it calls
        self.accumulated: set = set()  # names of the leaf tensors the backward fills
        self.problem: str | None = None
        self._n = 0

    # --- names ----------------------------------------------------------------------------------
    def _name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def constant(self, value) -> str:
        name = self._name("K")
        self.namespace[name] = value
        return name

    def register(self, obj, expr: str) -> None:
        self.keep.append(obj)
        self.expr[id(obj)] = expr
        if isinstance(obj, Tensor):
            self.keep.append(obj.data)
            self.expr[id(obj.data)] = expr

    def ref(self, obj, live: bool = True) -> str | None:
        """The replay's expression for ``obj``; None if it is a constant (and ``live``)."""
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

    def emit(self, code: str, reads: str = "", writes: str | None = None) -> None:
        self.lines.append((code, reads, writes))

    def fail(self, reason: str) -> None:
        if self.problem is None:
            self.problem = reason

    # --- hooks called by the engine ------------------------------------------------------------
    def record_op(self, forward, args, params, result, generic, fn) -> None:
        if self.depth:
            return
        self.functions.append((fn, fn.needs_input_grad))
        operands = [self.operand(a) for a in args]
        operands += [f"{k}={self.constant(v)}" for k, v in params.items()]
        call = f"{self.constant(forward)}({', '.join(operands)})"
        if generic:
            call = f"_asarray({call})"
        out = self._name("v")
        self.register(result, out)
        self.emit(f"{out} = {call}", " ".join(operands), out)
        self.op_lines[len(self.lines) - 1] = fn

    def record_derived(self, f, *operands_and_result) -> None:
        """``result = f(*operands)`` computed outside the graph (conversions, comparisons)."""
        if self.depth:
            return
        *operands, result = operands_and_result
        refs = [self.ref(o) for o in operands]
        if all(r is None for r in refs):
            return  # made from constants only: it is a constant too
        ops = [r if r is not None else self.constant(o) for r, o in zip(refs, operands)]
        out = self._name("v")
        self.register(result, out)
        self.emit(f"{out} = {self.constant(f)}({', '.join(ops)})", " ".join(ops), out)

    def record_host_read(self, t, what: str) -> None:
        if self.depth:
            return
        if id(t) in self.expr or t.requires_grad:
            self.fail(f"the step reads a tensor's value ({what}), so it may depend on the data")

    def record_set_grad(self, t, value) -> None:
        if self.depth:
            return
        self.ref(t)  # a tensor made before the step becomes a named constant
        target = self.leaf.get(id(t))
        if target is None:
            self.fail("the step assigns .grad of a tensor it created")
            return
        v = self.operand(value)
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
        if given is None:
            seed = f"_ones_like({root_expr})"
        else:
            seed = f"_array({self.operand(given)}, dtype={self.constant(root.dtype)})"
        rec: list = []
        self.lines.append(("backward", root_expr, seed, rec))
        return rec

    # --- the replay function ------------------------------------------------------------------
    def _backward_lines(self, root_expr: str, seed: str, rec: list) -> list:
        """Statements for one recorded backward pass (same order as the eager one)."""
        out: list = []
        handed = self._name("h")
        out.append((f"{handed} = set()", "", None))
        out.append((f"g{root_expr} = {seed}", root_expr, None))
        after: list = []
        result = "r"
        tupled = False
        for kind, t, node, a, b in rec:
            if kind == "node":
                out.extend(after)
                tupled, retain = a, b
                if id(t) not in self.expr:
                    self.fail("backward() through ops that ran before the step")
                    return out
                g = f"g{self.expr[id(t)]}"
                result = self._name("r")
                back = self.constant(node.backward)
                out.append((f"{result} = {back}({g})", "", None))
                after = [(f"del {g}", "", None)]
                if not retain:  # free the saved arrays now, as the eager backward does
                    after.append((self._clear(node), "", None))
                continue
            x = f"{result}[{a}]" if tupled else result
            if b:
                x = f"_unbroadcast({x}, {self.constant(t.data.shape)})"
            if kind == "leaf":
                target = self.leaf.get(id(t))
                if target is None:
                    self.fail("a tensor created inside the step requires grad")
                    target = "None"
                self.accumulated.add(target)
                out.append((f"_acc({target}, {x}, {handed})", "", None))
            else:
                g = f"g{self.expr[id(t)]}"
                if kind == "first":
                    out.append((f"{g} = {x}; {handed}.add(id({g}))", "", None))
                else:
                    out.append((f"{g} = {g} + {x}", "", None))
        out.extend(after)
        return out

    def _clear(self, fn) -> str:
        """A statement dropping what ``fn`` saved for backward, keeping needs_input_grad."""
        d = self.constant(fn.__dict__)
        return f"{d}.clear(); {d}['needs_input_grad'] = {self.constant(fn.needs_input_grad)}"

    def build(self, n_inputs: int, input_kinds: list, kw_names: list, returned: list) -> str:
        """Source of ``_replay(x0, x1, ..., **kw)``: one statement per recorded array call."""
        backed = {id(r[2]) for e in self.lines if e[0] == "backward" for r in e[3] if r[2]}
        lines = []
        for i, entry in enumerate(self.lines):
            if entry[0] == "backward":
                lines.extend(self._backward_lines(*entry[1:]))
                continue
            lines.append(entry)
            fn = self.op_lines.get(i)
            if fn is not None and id(fn) not in backed:
                # no backward uses what this op saved: drop it now, as eager garbage would be
                lines.append((self._clear(fn), "", None))
        returned_names = set(returned)
        last_read: dict[str, int] = {}
        for i, (_, reads, _) in enumerate(lines):
            for tok in _names(reads):
                last_read[tok] = i
        body = [f"x{n_inputs + j} = kw[{k!r}]" for j, k in enumerate(kw_names)]
        for i, kind in enumerate(input_kinds):
            if kind == "tensor":
                body.append(f"a{i} = x{i}.data")
            elif kind == "array":
                body.append(f"a{i} = x{i}")
        frees: dict[int, list] = {}
        for name, i in last_read.items():
            if name.startswith("v") and name not in returned_names:
                frees.setdefault(i, []).append(name)
        for i, (code, _, writes) in enumerate(lines):
            if writes is not None and writes not in last_read and writes not in returned_names:
                code = code.split(" = ", 1)[1]  # computed for its side effects only
            body.append(code)
            if i in frees:
                body.append("del " + ", ".join(sorted(frees[i])))
        body.append(f"return ({', '.join(returned)}{',' if returned else ''})")
        params = [f"x{i}" for i in range(n_inputs)] + ["**kw"]
        src = f"def _replay({', '.join(params)}):\n    " + "\n    ".join(body) + "\n"
        return src


def _names(reads: str) -> list:
    """Variable names (v12, a0) inside a space-joined list of expressions."""
    out = []
    for ch in "()[],":
        reads = reads.replace(ch, " ")
    for part in reads.split():
        part = part.split("=")[-1].split(".")[0].split("[")[0]
        if part[:1] in ("v", "a") and part[1:].isdigit():
            out.append(part)
    return out


class _Program:
    """One trace: the replay function, the module flags it assumed, how to build its result."""

    __slots__ = ("replay", "modules", "flags", "build", "source", "leaves", "verified")

    def __init__(self, replay, modules, build, source, leaves):
        self.replay, self.modules, self.build, self.source = replay, modules, build, source
        self.flags = tuple(m.training for m in modules)
        self.leaves, self.verified = leaves, False

    def matches(self) -> bool:
        return all(m.training == f for m, f in zip(self.modules, self.flags))


def _signature(args, kwargs) -> tuple:
    return (
        tuple(_sig(a) for a in args),
        tuple((k, _sig(kwargs[k])) for k in sorted(kwargs)),
        autograd._grad_enabled,
    )


def _sig(a):
    if isinstance(a, Tensor):
        return (Tensor, a.data.shape, a.data.dtype, a.requires_grad, type(a.data))
    if isinstance(a, np.ndarray):
        return (np.ndarray, a.shape, a.dtype)
    if isinstance(a, (numbers.Number, str, bytes, type(None))):
        return (type(a), a)
    return (object, id(a))


class CompiledStep:
    """A training step traced once per input signature and replayed (see :func:`compile`).

    Attributes
    ----------
    traces : int
        How many times the step was traced (one per signature, shapes and module modes).
    replays : int
        How many calls were replays of a trace.
    eager_reasons : dict
        For each signature that runs eagerly, why.
    """

    def __init__(self, fn, max_traces: int = 8, verify: bool = False):
        if not callable(fn):
            raise TypeError(f"gradstep.compile needs a callable step function, got {fn!r}")
        if not isinstance(max_traces, int) or max_traces < 1:
            raise ValueError(f"max_traces must be a positive int, got {max_traces!r}")
        functools.update_wrapper(self, fn)
        self.fn, self.max_traces, self.verify = fn, max_traces, verify
        self.traces = self.replays = 0
        self.eager_reasons: dict = {}
        self._programs: dict = {}
        self._warned: set = set()

    def __call__(self, *args, **kwargs):
        if autograd._tracer is not None:  # inside another trace: be part of it
            return self.fn(*args, **kwargs)
        key = _signature(args, kwargs)
        programs = self._programs.get(key)
        if programs is not None:
            for p in programs:
                if p.matches():
                    if self.verify and not p.verified:
                        return self._verify(p, key, args, kwargs)
                    self.replays += 1
                    return p.build(p.replay(*args, **kwargs))
        elif key in self.eager_reasons:
            return self.fn(*args, **kwargs)
        if self.traces >= self.max_traces:
            self._notice(
                f"more than {self.max_traces} different argument shapes, dtypes or module "
                "modes (max_traces)",
            )
            return self.fn(*args, **kwargs)
        return self._trace(key, args, kwargs)

    def _notice(self, reason: str) -> None:
        if reason not in self._warned:
            self._warned.add(reason)
            name = getattr(self.fn, "__name__", "step")
            warnings.warn(
                f"gradstep.compile({name}): {reason}; running it eagerly", CompileWarning, 3
            )

    def _verify(self, program: _Program, key, args, kwargs):
        """Replay, then run eagerly from the same random state, and compare bit for bit.

        Catches what a trace cannot see (NumPy code on ``.data``, Python state) on the first
        replay of each trace. Only for steps that may run twice: no update inside (fit's
        forward+backward). The eager run's results are the ones that stay. The global
        generator is restored between the two runs; a step drawing from a generator of its own
        differs and so runs eagerly.
        """
        from gradstep import random as gs_random

        rng = gs_random.get_rng_state()
        out = program.build(program.replay(*args, **kwargs))
        replayed = _arrays(out)
        grads = [t._grad for t in program.leaves]
        gs_random.set_rng_state(rng)
        result = self.fn(*args, **kwargs)
        same = _same_arrays(replayed, _arrays(result)) and _same_arrays(
            grads, [t._grad for t in program.leaves]
        )
        program.verified = True
        if not same:
            self._programs[key].remove(program)
            self.eager_reasons[key] = "replay and eager results differ"
            self._notice(
                "a replay differs from eager execution (the step depends on something a trace "
                "cannot see: NumPy code on .data, or Python state)"
            )
            return result
        self.replays += 1
        return out

    def _trace(self, key, args, kwargs):
        tracer = _Tracer()
        inputs = list(args) + [kwargs[k] for k in sorted(kwargs)]
        kinds = []
        for i, obj in enumerate(inputs):
            if isinstance(obj, Tensor):
                kinds.append("tensor")
                tracer.register(obj, f"a{i}")
                tracer.leaf[id(obj)] = f"x{i}"
            elif isinstance(obj, np.ndarray):
                kinds.append("array")
                tracer.register(obj, f"a{i}")
            else:
                kinds.append(None)
        autograd._tracer = tracer
        try:
            result = self.fn(*args, **kwargs)
        finally:
            autograd._tracer = None
            for fn, needs in tracer.functions:  # the trace's backward freed them
                fn.needs_input_grad = needs
        self.traces += 1
        try:
            program, returned = self._build(tracer, kinds, sorted(kwargs), result)
        except _NotReplayableError as e:
            self.eager_reasons[key] = str(e)
            self._notice(str(e))
            return result
        self._programs.setdefault(key, []).append(program)
        return program.build(tuple(a for _, a in returned))

    def _build(self, tracer: _Tracer, kinds, kw_names, result) -> tuple:
        returned: list = []
        build = _result_builder(tracer, result, returned)
        src = tracer.build(len(kinds) - len(kw_names), kinds, kw_names, [e for e, _ in returned])
        if tracer.problem is not None:
            raise _NotReplayableError(tracer.problem)
        used = set(_names(" ".join(entry[1] for entry in tracer.lines if entry[0] != "backward")))
        used.update(e[1] for e in tracer.lines if e[0] == "backward")
        for i, kind in enumerate(kinds):
            if kind is not None and f"a{i}" not in used:
                raise _NotReplayableError(
                    f"argument {i} reaches no gradstep op (NumPy code on an argument cannot be "
                    "traced; pass the array itself to the model or the loss)"
                )
        namespace = dict(tracer.namespace)
        name = getattr(self.fn, "__name__", "step")
        exec(builtins.compile(src, f"<gradstep.compile {name}>", "exec"), namespace)
        leaves = [namespace[n] for n in sorted(tracer.accumulated) if n in namespace]
        program = _Program(namespace["_replay"], list(tracer.modules.values()), build, src, leaves)
        return program, returned


def _arrays(result) -> list:
    """The arrays inside a step's result, in order (for comparing two runs)."""
    if isinstance(result, Tensor):
        return [result.data]
    if isinstance(result, (tuple, list)):
        return [a for r in result for a in _arrays(r)]
    if isinstance(result, dict):
        return [a for r in result.values() for a in _arrays(r)]
    return []


def _same_arrays(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        (x is None and y is None)
        or (
            x is not None
            and y is not None
            and x.shape == y.shape
            and x.dtype == y.dtype
            and x.tobytes() == y.tobytes()
        )
        for x, y in zip(a, b)
    )


def _result_builder(tracer: _Tracer, result, returned: list):
    """A function turning the replay's returned arrays back into the step's return value."""
    if isinstance(result, Tensor):
        e = tracer.expr.get(id(result))
        if e is None or not e.startswith("v"):
            return lambda arrays, r=result: r  # a tensor the step did not compute
        returned.append((e, result.data))
        j = len(returned) - 1
        return lambda arrays: Tensor._make(arrays[j], False, None)
    if isinstance(result, (tuple, list)):
        parts = [_result_builder(tracer, r, returned) for r in result]
        kind = type(result)
        return lambda arrays: kind(p(arrays) for p in parts)
    if isinstance(result, dict):
        parts = {k: _result_builder(tracer, v, returned) for k, v in result.items()}
        return lambda arrays: {k: p(arrays) for k, p in parts.items()}
    if isinstance(result, (numbers.Number, np.ndarray)) and not isinstance(result, bool):
        tracer.fail(
            "the step returns a number or array computed from tensors; return the tensor "
            "itself (a replay cannot recompute a Python value)"
        )
    return lambda arrays, r=result: r


def compile(step_fn=None, *, max_traces: int = 8, verify: bool = False):  # noqa: A001 (gradstep.compile, as torch's)
    """Trace a training step once and replay it without building a graph.

    ``step_fn(x, y)`` is an ordinary step (``zero_grad``, forward, loss, ``backward()``,
    ``step()``) that returns the loss tensor; the result is called the same way::

        @gradstep.compile
        def step(x, y):
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            return loss

        for x, y in loader:
            loss = step(x, y)

    The first call for each argument signature runs eagerly and records the step; later calls
    replay the record and give bit-identical results. See :mod:`gradstep.tracing` for what a
    trace cannot see and how the step then falls back to eager execution.

    Parameters
    ----------
    step_fn : callable
    max_traces : int
        How many signatures (shapes, dtypes, Python scalars, module modes) to keep traces for.
    verify : bool
        On the first replay of each trace, also run the step eagerly from the same random
        state and compare results and gradients bit for bit; on a difference, warn and run
        eagerly. Only for steps that can run twice (no optimizer update inside); ``fit`` uses
        it for its forward+backward.

    Returns
    -------
    CompiledStep
    """
    if step_fn is None:
        return functools.partial(compile, max_traces=max_traces, verify=verify)
    return CompiledStep(step_fn, max_traces, verify)
