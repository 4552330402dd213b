"""CompiledStep: which trace to replay for a call, when to trace again, when to run eagerly."""

from __future__ import annotations

import builtins
import functools
import os
import sys
import threading
import warnings

import numpy as np

from gradstep import autograd
from gradstep import random as gs_random
from gradstep.optim.optimizer import StateMismatchError
from gradstep.tensor import Tensor
from gradstep.tracing.codegen import names, replay_source
from gradstep.tracing.fast_path import MISS, fast_path
from gradstep.tracing.ir import Backward, Stmt
from gradstep.tracing.recorder import Tracer
from gradstep.tracing.results import arrays, result_builder, same_arrays
from gradstep.tracing.signature import _change, _signature

BACKENDS = ("replay", "native", "auto")
#: Held while a step is traced: the engine has one hook (autograd._tracer) for the process.
_TRACING = threading.Lock()


def _native_available() -> bool:
    from gradstep.tracing.native import available

    return available()


class CompileWarning(UserWarning):
    """A compiled step runs eagerly for a case it cannot replay (the message says why)."""


class _NotReplayableError(Exception):
    """Raised inside the tracer when the trace cannot be replayed; caught by CompiledStep."""


class _Program:
    """One trace: the replay function, the module flags it assumed, how to build its result."""

    __slots__ = (
        "replay",
        "modules",
        "flags",
        "build",
        "source",
        "leaves",
        "verified",
        "native",
        "fast",
    )

    def __init__(self, replay, modules, build, source, leaves):
        self.replay, self.modules, self.build, self.source = replay, modules, build, source
        self.flags = [m.training for m in modules]
        self.leaves, self.verified = leaves, False
        self.native = None  # a NativeProgram when the step was lowered to native code
        self.fast = None  # its guard-and-call function (see _fast_path), made on first use

    def matches(self) -> bool:
        return [m.training for m in self.modules] == self.flags  # runs every call: no generator


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside gradstep's tracing (or the loop of
    gradstep.train), so a notice points at the user's line whatever path raised it."""
    frame, level = sys._getframe(1), 1
    inside = (
        os.sep + os.path.join("gradstep", "tracing") + os.sep,
        os.sep + os.path.join("gradstep", "train", "loop.py"),
    )
    while frame is not None and (
        frame.f_code.co_filename.startswith("<gradstep")  # generated replay/guard code
        or any(part in frame.f_code.co_filename for part in inside)
    ):
        frame, level = frame.f_back, level + 1
    return level


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
    native_notice : str or None
        Why the last trace got no native step (backend "native"/"auto"), else None.
    notice_native : bool
        Whether that reason is also warned about (a :class:`CompileWarning`); True.
    """

    def __init__(
        self, fn, max_traces: int = 8, verify: bool = False, notice_retrace=True, backend="replay"
    ):
        if not callable(fn):
            raise TypeError(f"gradstep.compile needs a callable step function, got {fn!r}")
        if not isinstance(max_traces, int) or max_traces < 1:
            raise ValueError(f"max_traces must be a positive int, got {max_traces!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "native" and not _native_available():
            raise ImportError(
                "gradstep.compile(backend='native') needs numba: pip install 'gradstep[native]'"
            )
        functools.update_wrapper(self, fn)
        self.fn, self.max_traces, self.verify = fn, max_traces, verify
        self.backend = backend
        #: What notices call the step (fit names its own: "fit's forward and backward").
        self.name = getattr(fn, "__name__", "step")
        #: Seconds spent compiling native code (or loading it from numba's cache), per trace.
        self.compile_seconds: list = []
        self.notice_retrace = notice_retrace
        #: Warn when a trace gets no native step (the reason is kept as ``native_notice``).
        self.notice_native = True
        self.native_notice: str | None = None
        self.traces = self.replays = 0
        self.eager_reasons: dict = {}
        self._programs: dict = {}
        self._warned: set = set()
        self._fast = None  # the guard-and-call function of the native program used last

    def __call__(self, *args, **kwargs):
        tracer = autograd._tracer
        if tracer is not None and tracer.thread == threading.get_ident():
            return self.fn(*args, **kwargs)  # inside this thread's trace: be part of it
        fast = self._fast
        if fast is not None:  # the last native program's own guards and call
            out = fast(args, kwargs)
            if out is not MISS:
                return out
        key = _signature(args, kwargs)
        programs = self._programs.get(key)
        if programs:
            for p in programs:
                if p.matches():
                    if self.verify and not p.verified:
                        return self._verify(p, key, args, kwargs)
                    self.replays += 1
                    if p.native is not None:
                        if p.fast is None:  # made once; None where no guard can tell
                            p.fast = fast_path(self, key, p) or False
                        self._fast = p.fast or None
                        try:
                            return p.build(p.native(args, kwargs))
                        except StateMismatchError as e:  # states that cannot be flat
                            return self._native_failed(e, args, kwargs)
                    return p.build(p.replay(*args, **kwargs))
        if key in self.eager_reasons:  # verify found this signature cannot be replayed
            return self.fn(*args, **kwargs)
        if self.traces >= self.max_traces:
            self._notice(
                f"more than {self.max_traces} different argument shapes, dtypes or module "
                "modes (max_traces)",
            )
            return self.fn(*args, **kwargs)
        if self._programs and self.notice_retrace:
            change = _change(next(iter(self._programs)), key) if programs is None else None
            self._notice(
                f"{change or 'module modes (train/eval) differ from every trace'}: this call "
                f"runs eagerly and is traced again (trace {self.traces + 1} of at most "
                f"{self.max_traces})",
                "",
            )
        return self._trace(key, args, kwargs)

    @property
    def native_programs(self) -> list:
        """The native programs of this step's traces (``.source`` is the generated code,
        ``.compile_seconds`` its compilation); empty when every trace is replayed with NumPy."""
        return [p.native for ps in self._programs.values() for p in ps if p.native is not None]

    def _native_failed(self, error, args, kwargs):
        """A native program's optimizer states cannot be flat (see native_update): eager."""
        self.replays -= 1
        self._notice(f"{error}; this call runs eagerly", "")
        return self.fn(*args, **kwargs)

    def _notice(self, reason: str, consequence: str = "; running it eagerly") -> None:
        if reason not in self._warned:
            self._warned.add(reason)
            warnings.warn(
                f"gradstep.compile({self.name}): {reason}{consequence}",
                CompileWarning,
                _caller_level(),
            )

    def _verify(self, program: _Program, key, args, kwargs):
        """Run the trace and the step eagerly from the same random state, and compare.

        Catches what a trace cannot see (NumPy code on ``.data``, Python state) on the first
        replay of each trace. Only for steps that may run twice: no update inside (fit's
        forward+backward). A replay must equal eager bit for bit, and the eager run's results
        stay; a native step must equal it to rounding, and its own results stay, so that every
        call of a trace computes the same way. The global generator is restored between the
        two runs; a step drawing from a generator of its own differs and so runs eagerly.
        """
        rng = gs_random.get_rng_state()
        if program.native is not None:
            result = self.fn(*args, **kwargs)
            out = self._native_instead(program, args, kwargs, result, rng)
            same = out is not None
        else:
            out = program.build(program.replay(*args, **kwargs))
            replayed = arrays(out)
            grads = [None if t._grad is None else t._grad.copy() for t in program.leaves]
            gs_random.set_rng_state(rng)
            result = self.fn(*args, **kwargs)
            same = same_arrays(replayed, arrays(result)) and same_arrays(
                grads, [t._grad for t in program.leaves]
            )
        program.verified = True
        if not same:
            self._programs[key].remove(program)
            what = "replay" if program.native is None else "native step"
            self.eager_reasons[key] = f"{what} and eager results differ"
            self._notice(
                f"a {what} differs from eager execution (the step depends on something a "
                "trace cannot see: NumPy code on .data, or Python state)"
            )
            if program.native is not None:  # the native run overwrote the gradients
                gs_random.set_rng_state(rng)
                result = self.fn(*args, **kwargs)
            return result
        self.replays += 1
        return out

    def _native_instead(self, program: _Program, args, kwargs, result, rng):
        """Run the native step where ``result`` was just computed eagerly from the random state
        ``rng``: its results (returned, and the gradients it leaves) if they equal eager's to
        rounding, else None (the gradients are then the native run's: run eagerly again)."""
        leaves = program.native.params
        eager = [a.copy() for a in arrays(result)]
        grads = [None if t._grad is None else t._grad.copy() for t in leaves]
        gs_random.set_rng_state(rng)
        out = program.build(program.native(args, kwargs))
        same = same_arrays(arrays(out), eager, True) and same_arrays(
            [t._grad for t in leaves], grads, True
        )
        return out if same else None

    def _trace(self, key, args, kwargs):
        tracer = Tracer()
        inputs = list(args) + [kwargs[k] for k in sorted(kwargs)]
        kinds = []
        for i, obj in enumerate(inputs):
            if isinstance(obj, Tensor):
                kinds.append("tensor")
                tracer.register(obj, f"a{i}")
                tracer.leaf[id(obj)] = f"x{i}"
                tracer.arguments.add(id(obj))
            elif isinstance(obj, np.ndarray):
                kinds.append("array")
                tracer.register(obj, f"a{i}")
            else:
                kinds.append(None)
        # a step that may run twice gets the native step's numbers from its first call on
        rng = gs_random.get_rng_state() if self.verify and self.backend != "replay" else None
        with _TRACING:  # the engine has one hook: one thread traces at a time
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
        if self.backend != "replay":
            program.native = self._lower(tracer, kinds, returned, args, kwargs)
        self._programs.setdefault(key, []).append(program)
        if program.native is not None and rng is not None:
            out = self._native_instead(program, args, kwargs, result, rng)
            if out is not None:
                return out
            self._programs[key].remove(program)  # numbers far from eager's: eager from now on
            self.eager_reasons[key] = "the native step's results differ from eager execution"
            self._notice(self.eager_reasons[key])
            gs_random.set_rng_state(rng)
            return self.fn(*args, **kwargs)
        return program.build(tuple(a for _, a in returned))

    def _lower(self, tracer, kinds, returned, args, kwargs):
        """The trace lowered to a compiled native step, or None (with a one-line notice) when a
        part of it has no native form or numba is missing ("auto")."""
        if not _native_available():
            return None
        from gradstep.tracing import native

        name = getattr(self.fn, "__name__", "step")
        try:
            program = native.lower(
                tracer,
                kinds,
                sorted(kwargs),
                [e for e, _ in returned],
                name,
                auto=self.backend == "auto",
            )
            program.compile_now(args, kwargs)
        except native.NotLowerableError as e:
            self._no_native(f"no native step: {e}")
            return None
        except Exception as e:  # numba refusing the generated code: training goes on replayed
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
            self._no_native(f"no native step: compiling it failed ({type(e).__name__}: {first})")
            return None
        self.compile_seconds.append(program.compile_seconds)
        return program

    def _no_native(self, reason: str) -> None:
        """Why a trace is replayed instead of native: kept as ``native_notice``, and warned
        about unless ``notice_native`` is off (fit reports it its own way)."""
        self.native_notice = reason
        if self.notice_native:
            self._notice(reason, "; replaying it with NumPy")

    def _build(self, tracer: Tracer, kinds, kw_names, result) -> tuple:
        returned: list = []
        build = result_builder(tracer, result, returned)
        src = replay_source(
            tracer, len(kinds) - len(kw_names), kinds, kw_names, [e for e, _ in returned]
        )
        if tracer.problem is not None:
            raise _NotReplayableError(tracer.problem)
        args = {f"a{i}" for i in range(len(kinds))}
        used = set(names(" ".join(e.reads for e in tracer.lines if isinstance(e, Stmt)), args))
        used.update(e.root for e in tracer.lines if isinstance(e, Backward))
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


def compile(  # noqa: A001 (gradstep.compile, as torch's)
    step_fn=None,
    *,
    max_traces: int = 8,
    verify: bool = False,
    notice_retrace=True,
    backend: str = "replay",
):
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
        state and compare results and gradients (bit for bit for a replay, to rounding for a
        native step); on a difference, warn and run eagerly. Only for steps that can run
        twice (no optimizer update inside); ``fit`` uses it for its forward+backward. A
        native step is also run right after its trace, so that every call of it computes
        the same way (its results are kept, not the traced eager run's).
    notice_retrace : bool
        Warn (a one-line :class:`CompileWarning`, once per new signature) when a call's
        shapes, dtypes, Python scalars or module modes differ from every trace, so the call
        runs eagerly and is traced again. ``fit`` turns it off: its last, smaller batch and
        its validation batches are expected new shapes.

    backend : {"replay", "native", "auto"}
        "replay" replays the trace with NumPy, bit-identical to eager execution. "native"
        lowers the whole step (forward, loss, backward, optimizer update) to one function
        compiled with numba (``pip install 'gradstep[native]'``), equal to eager to rounding
        (see docs/compile.md); a step with an op that has no native kernel is replayed
        instead, with a one-line notice naming it. "auto" is "native" where it pays: numba
        installed, every op native, and no matrix product of 2^24 multiply-adds or more
        while BLAS runs on several threads (``tracing.native.AUTO_MAX_PRODUCT``, where
        NumPy's BLAS is faster); "replay" otherwise.

    Returns
    -------
    CompiledStep
    """
    if step_fn is None:
        return functools.partial(
            compile,
            max_traces=max_traces,
            verify=verify,
            notice_retrace=notice_retrace,
            backend=backend,
        )
    return CompiledStep(step_fn, max_traces, verify, notice_retrace, backend)
