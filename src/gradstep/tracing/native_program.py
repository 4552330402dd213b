"""The compiled native step: its generated source, numba's disk cache, the per-call wrapper.

:mod:`.native` lowers a trace into a :class:`~gradstep.tracing.native.Lowering`; this module
turns that into a :class:`NativeProgram`: the source of one ``@njit(cache=True)`` function,
written to the cache folder under its digest, and a generated Python function that does one
call (the optimizers' scalars, the compiled step, the gradients shown as ``.grad``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
import sys
import time

import numpy as np

from gradstep.tensor import Tensor


def cache_dir() -> str:
    """Where generated steps and numba's cache of them live: $GRADSTEP_CACHE_DIR, else
    $XDG_CACHE_HOME/gradstep/native, else ~/.cache/gradstep/native."""
    explicit = os.environ.get("GRADSTEP_CACHE_DIR")
    if explicit:
        return os.path.join(explicit, "native")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gradstep", "native")


def _kernels_digest() -> str:
    from gradstep.tracing import native_kernels

    with open(native_kernels.__file__, "rb") as f:
        src = f.read()
    import numba

    return hashlib.sha256(src + numba.__version__.encode()).hexdigest()


#: Below this many multiply-adds in its largest matrix product, a native step runs its BLAS
#: calls on one thread. Measured at 1 and 2 threads on the benchmark's CPU (2 cores, shared):
#: (b), 1.9M, ran 5,062 steps/s on one thread and 2,661 on two; (c), 134M, 42 and 34-46.
ONE_THREAD_BELOW = 1 << 24


def _blas_of(package: str):
    """threadpoolctl's controller of the BLAS bundled with ``package`` (its wheel's
    ``<package>.libs`` folder), or None when there is not exactly one."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    libs = [
        c
        for c in ThreadpoolController().lib_controllers
        if f"{package}.libs" in c.filepath or f"{package}/.libs" in c.filepath
    ]
    return libs[0] if len(libs) == 1 else None


@functools.lru_cache(maxsize=1)
def _numba_blas():
    """The BLAS numba's np.dot calls (SciPy's OpenBLAS, loaded here), or None."""
    try:
        import scipy.linalg.cython_blas  # noqa: F401  (loads it)
    except ImportError:
        return None
    return _blas_of("scipy")


@functools.lru_cache(maxsize=1)
def _numpy_blas():
    """NumPy's own BLAS, or None. Its thread count is the user's setting (a
    ``threadpool_limits`` entered before SciPy's BLAS was loaded reaches NumPy's only)."""
    return _blas_of("numpy")


#: An integer written in a generated step (an offset, a shape, a count): not part of a name
#: (``relu1``) or of a float (``0.01``, ``1e-08``).
_INT = re.compile(r"(?<![\w.])\d+(?![\w.])")

#: The compiled functions of this process by digest: a new trace of the same structure (another
#: batch size, another width) reuses the function numba compiled or loaded for the first.
_LOADED: dict = {}


def generic(source: str) -> tuple[str, list]:
    """The step's source with every integer of its body read from ``dims`` instead, and those
    integers in order: sizes and offsets become arguments, so models of the same structure
    (layers, activations, loss, optimizer, dtype) share one source, one compilation and one
    disk-cache entry, whatever their batch size and widths. The kernels take shapes from their
    arrays at run time anyway; what the step itself does with the numbers is slicing."""
    head, sep, body = source.partition("\ndef step(")
    values: list = []

    def arg(m) -> str:
        values.append(int(m.group(0)))
        return f"dims[{len(values) - 1}]"

    signature, colon, rest = body.partition("):\n")
    return head + sep + signature + ", dims" + colon + _INT.sub(arg, rest), values


def _contiguous(a):
    """``a`` itself when C-contiguous (0-d included), else a C-contiguous copy of the same
    shape (np.ascontiguousarray would make a 0-d array 1-d)."""
    return a if a.flags.c_contiguous else np.ascontiguousarray(a).reshape(a.shape)


def _snapshot(opt, flat) -> tuple:
    """An optimizer group's state before a native step counts it (see _restore)."""
    return dict(flat.state), {
        id(p): dict(opt.state[id(p)]) for p in flat.params if id(p) in opt.state
    }


def _restore(opt, flat, saved) -> None:
    """Undo what a step's scalars did to the state (a count, arrays made on the first step):
    the step stopped at a value check, as eager execution does before any update."""
    flat_state, per_param = saved
    flat.state.clear()
    flat.state.update(flat_state)
    flat.bound.clear()
    for p in flat.params:
        if id(p) in per_param:
            opt.state[id(p)] = per_param[id(p)]
        else:
            opt.state.pop(id(p), None)


class NativeProgram:
    """The compiled native step and what it needs around each call.

    Calling it runs the step on the call's arguments: the Python calls recorded before the
    first op, each optimizer's scalars for this step, the compiled function, the gradients
    shown as each parameter's ``.grad``, the Python calls recorded after the update.
    """

    def __init__(self, L, head, groups, kinds, kw_names, consts, results, before, after, name):
        self.groups, self.kinds, self.consts = groups, kinds, consts
        self.results, self.before, self.after = results, before, after
        self.dtype = L.dtype
        self.checks = L.checks
        self.largest_matmul = L.largest_matmul
        self.where = L.where
        self.work = np.zeros(L.work, L.dtype)
        self.status = np.zeros(3, np.int64)  # a failed check: its values, then its number
        self.leaves = [(p, h) for g in groups for p, _, h in g.flat.slots]
        self.params = [p for p, _ in self.leaves]
        self.source = self._source(L, head)  # with the numbers, as a reader wants them
        self.compiled_source, dims = generic(self.source)  # what numba compiles and caches
        self.dims = np.array(dims, np.int64)
        self.compile_seconds = 0.0
        self.cached = False  # compile_now ran numba's disk cache's code
        self.compiled = False  # compile_now had to compile it (not found in the cache)
        self._file = None  # the generated file numba caches, when the cache is writable
        self._fn = self._load(name)
        self._call = self._caller(kw_names)

    def _source(self, L, head) -> str:
        args = [f"a{i}" for i, k in enumerate(self.kinds) if k is not None]
        args += [f"c{k}" for k in range(len(self.consts))]
        for g in self.groups:
            args += [g.data, g.grad]
            if g.update is not None:  # stepped inside (a forward+backward step is not)
                args += [f"S{g.index}_{k}" for k in range(len(g.update[1]))]
                args.append(f"Q{g.index}")
        args += ["work", "status"] if self.checks else ["work"]
        scalars = [v for v in self.results if v.ndim == 0]
        if len(scalars) == 1:  # the common case (the loss): a float, not a tuple
            ret, failed = str(scalars[0]), "_T(0)"
        else:
            ret = "(" + "".join(f"{v}, " for v in scalars) + ")"
            failed = "(" + "_T(0), " * len(scalars) + ")"
        lines = head + L.views + L.body
        body = "\n    ".join(line.replace("FAILED", failed) for line in lines)
        t = "np.float32" if self.dtype == np.float32 else "np.float64"
        return (
            "# generated by gradstep.compile(backend='native'); edits are overwritten\n"
            "import numpy as np\n"
            "from numba import njit\n"
            "from gradstep.tracing.native_kernels import *  # noqa: F403\n\n"
            f"_T = {t}\n\n\n"
            "@njit(cache=True, nogil=True, error_model='numpy')\n"
            f"def step({', '.join(args)}):\n    {'status[2] = 0' if self.checks else 'pass'}\n"
            f"    {body}\n    return {ret}\n"
        )

    def _load(self, name: str):
        digest = hashlib.sha256((self.compiled_source + _kernels_digest()).encode()).hexdigest()[
            :24
        ]
        key = (cache_dir(), digest)
        if key not in _LOADED:
            _LOADED[key] = self._load_file(name, digest)
        return _LOADED[key]

    def _load_file(self, name: str, digest: str):
        folder = cache_dir()
        path = os.path.join(folder, f"step_{digest}.py")
        try:
            os.makedirs(folder, exist_ok=True)
            if not os.path.exists(path):  # complete or absent, and never replaced:
                tmp = f"{path}.{os.getpid()}.tmp"  # written aside, then linked into place
                with open(tmp, "w") as f:
                    f.write(self.compiled_source)
                try:
                    os.link(tmp, path)  # fails if another process got there first
                except FileExistsError:
                    pass  # the same digest: the same source
                finally:
                    os.unlink(tmp)  # the aside copy this call made
            cacheable = os.access(folder, os.W_OK)
        except OSError:
            cacheable = False
        if cacheable:
            self._file = path
            return _import_step(path, f"_gradstep_native_{digest}")
        namespace: dict = {}
        exec(
            compile(
                self.compiled_source.replace("cache=True", "cache=False"),
                f"<native {name}>",
                "exec",
            ),
            namespace,
        )
        return namespace["step"]

    def arguments(self, args, kwargs, dry: bool = False) -> list:
        """The compiled function's arguments for one call (``dry``: without counting a step)."""
        inputs = list(args) + [kwargs[k] for k in sorted(kwargs)]
        out = [a.data if k == "tensor" else a for a, k in zip(inputs, self.kinds) if k]
        out += [c.data if isinstance(c, Tensor) else c for c in self.consts]
        for g in self.groups:
            flat = g.flat
            if any(p.data is not v for p, v, _ in flat.slots):
                flat.link()  # p.data = array was assigned: copied into the buffer again
            out += [flat.data, flat.grad]
            if g.update is not None:
                _, keys, scalars = g.update
                q = scalars(dry=dry)  # first: it may sync or create the state arrays
                out += [*[flat.state[k] for k in keys], q]
        return out + ([self.work, self.status] if self.checks else [self.work]) + [self.dims]

    def _caller(self, kw_names: list):
        """A Python function doing one call with no loop of its own (this runs every step):
        the recorded calls before the first op, the arguments' arrays, the optimizers'
        scalars, the compiled step, the gradients shown as ``.grad``, the calls after."""
        ns: dict = {
            "fn": self._fn,
            "work": self.work,
            "dims": self.dims,
            "status": self.status,
            "_asarray": np.asarray,
        }
        ns["dtype"], ns["fail"] = self.dtype, self._fail
        lines = []
        for k, (func, a, kw) in enumerate(self.before):
            ns[f"B{k}"] = functools.partial(func, *a, **kw)
            lines.append(f"B{k}()")
        n_pos = len(self.kinds) - len(kw_names)
        call = []
        ns["contiguous"] = _contiguous
        for i, kind in enumerate(self.kinds):
            src = f"args[{i}]" if i < n_pos else f"kwargs[{kw_names[i - n_pos]!r}]"
            if kind:  # compiled for C-contiguous arrays: a slice of a batch is copied
                lines.append(f"d{i} = {src}.data" if kind == "tensor" else f"d{i} = {src}")
                lines.append(f"if not d{i}.flags.c_contiguous:\n        d{i} = contiguous(d{i})")
                call.append(f"d{i}")
        for k, c in enumerate(self.consts):
            ns[f"C{k}"] = c
            call.append(f"contiguous(C{k}.data)" if isinstance(c, Tensor) else f"contiguous(C{k})")
        grads = []
        undo = []
        for g in self.groups:
            j = g.index
            ns[f"F{j}"] = g.flat
            moved = []
            for k, (p, v, h) in enumerate(g.flat.slots):
                ns[f"P{j}_{k}"], ns[f"V{j}_{k}"], ns[f"H{j}_{k}"] = p, v, h
                moved.append(f"P{j}_{k}.data is not V{j}_{k}")
                grads.append(f"P{j}_{k}._grad = H{j}_{k}")
            lines.append(f"if {' or '.join(moved)}:\n        F{j}.link()")
            call += [f"F{j}.data", f"F{j}.grad"]
            if g.update is not None:
                ns[f"Q{j}"], ns[f"O{j}"] = g.update[2], g.opt
                if self.checks:  # a failed check must leave the state as eager leaves it
                    lines.append(f"saved{j} = _snapshot(O{j}, F{j})")
                    undo.append(f"_restore(O{j}, F{j}, saved{j})")
                # the scalars first: they may sync or create the state arrays read next
                lines.append(f"q{j} = Q{j}()")
                call += [f"F{j}.state[{k!r}]" for k in g.update[1]]
                call.append(f"q{j}")
        ns["_snapshot"], ns["_restore"] = _snapshot, _restore
        call += ["work", "status", "dims"] if self.checks else ["work", "dims"]
        from gradstep.tracing.native_kernels import BLAS_MIN

        # only a step whose products reach BLAS pays for setting its threads (~3 us a call):
        # small products run on one thread; large ones on as many as NumPy's BLAS has now
        # (the user's setting: a threadpool_limits entered before numba's BLAS was loaded
        # did not reach it)
        blas = _numba_blas() if self.largest_matmul >= BLAS_MIN else None
        mirror = _numpy_blas() if self.largest_matmul >= ONE_THREAD_BELOW else None
        if blas is None or (self.largest_matmul >= ONE_THREAD_BELOW and mirror is None):
            lines.append(f"r = fn({', '.join(call)})")
        else:
            ns["blas"], ns["mirror"] = blas, mirror
            wanted = "1" if mirror is None else "mirror.get_num_threads()"
            lines.append(
                f"n_threads = blas.get_num_threads()\n    blas.set_num_threads({wanted})\n"
                f"    try:\n        r = fn({', '.join(call)})\n    finally:\n"
                "        blas.set_num_threads(n_threads)"
            )
        if self.checks:  # a step without value checks has no status array at all
            lines.append(
                "if status[2]:\n        " + "".join(u + "\n        " for u in undo) + "fail()"
            )
        lines += grads
        for k, (func, a, kw) in enumerate(self.after):
            ns[f"A{k}"] = functools.partial(func, *a, **kw)
            lines.append(f"A{k}()")
        scalars = [v for v in self.results if v.ndim == 0]
        values, it = [], iter(range(len(scalars)))
        for v in self.results:
            if v.ndim == 0:
                values.append(
                    "_asarray(r, dtype)" if len(scalars) == 1 else f"_asarray(r[{next(it)}], dtype)"
                )
            else:  # a copy: the work buffer is the next step's
                offset, shape = self.where[v.name]
                values.append(f"work[{offset}:{offset + v.size}].reshape({shape!r}).copy()")
        lines.append(f"return ({''.join(x + ', ' for x in values)})")
        src = "def call(args, kwargs):\n    " + "\n    ".join(lines) + "\n"
        self.caller_source = src
        exec(compile(src, "<gradstep native call>", "exec"), ns)
        return ns["call"]

    def _fail(self):
        raise ValueError(self.checks[self.status[2] - 1].format(*self.status[:2]))

    def compile_now(self, args, kwargs) -> None:
        """Compile for these arguments' types (or load numba's cache), timing it.

        A step not yet in the disk cache is compiled by a child process, and this one loads
        it from the cache as every later process will: code numba has just compiled in a
        process and the same code loaded from its cache were measured to round differently
        (the kernels' fused multiply-adds), and a run must compute the same bits whichever
        process compiled it (bit-identical resume, sweeps across processes)."""
        import numba

        t0 = time.perf_counter()
        types = tuple(numba.typeof(a) for a in self.arguments(args, kwargs, dry=True))
        known = self._file is None or self._in_cache()
        if not known:
            _compile_in_child(self._file, types)  # on failure: compiled here, as before
        self._fn.compile(types)
        self.compile_seconds = time.perf_counter() - t0
        stats = getattr(self._fn, "stats", None)  # numba's: loaded from its disk cache?
        self.cached = bool(stats and sum(stats.cache_hits.values()))
        # compiled for this call (by the child or here), not found compiled already
        self.compiled = not (known and self.cached)

    def _in_cache(self) -> bool:
        """Whether numba's disk cache has this step (its index file exists)."""
        try:
            return os.path.exists(self._fn._cache._cache_file._index_path)
        except AttributeError:  # another numba's internals: assume not
            return False

    def __call__(self, args, kwargs):
        return self._call(args, kwargs)


def _import_step(path: str, name: str):
    """The ``step`` dispatcher of a generated file, imported as module ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.step


_CHILD = """
import json, sys
import numpy as np
from numba import from_dtype, types
from gradstep.tracing.native_program import _import_step

def rebuild(t):
    kind, *rest = t
    if kind == "array":
        d, n, layout, ro = rest
        return types.Array(from_dtype(np.dtype(d)), n, layout, readonly=ro, aligned=True)
    if kind == "tuple":
        return types.BaseTuple.from_types([rebuild(x) for x in rest[0]])
    return getattr(types, rest[0])

path, name, signature = json.loads(sys.stdin.read())
_import_step(path, name).compile(tuple(rebuild(t) for t in signature))
"""


def _describe(t):
    """A numba argument type as JSON for the child (arrays, tuples of scalars, scalars), or
    None for any other."""
    from numba import types

    if isinstance(t, types.Array):
        if not t.aligned:
            return None
        return ["array", str(np.dtype(t.dtype.name)), t.ndim, t.layout, not t.mutable]
    if isinstance(t, types.BaseTuple):
        parts = [_describe(x) for x in t.types]
        return None if any(p is None for p in parts) else ["tuple", parts]
    if isinstance(t, (types.Float, types.Integer, types.Boolean)):
        return ["scalar", str(t)]
    return None


def _compile_in_child(path: str, signature: tuple) -> bool:
    """Compile the step file at ``path`` for ``signature`` (numba types, sent as JSON) in a
    child process, which leaves it (and the kernels it calls) in numba's disk cache; False if
    that was not possible."""
    import json
    import subprocess

    described = [_describe(t) for t in signature]
    if any(d is None for d in described):
        return False
    name = os.path.splitext(os.path.basename(path))[0]
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD],
            input=json.dumps([path, f"_gradstep_native_{name[5:]}", described]),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            # the child finds gradstep where this process did (a script may extend sys.path)
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0
