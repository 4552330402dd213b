"""From a tracer's records to the source of one replay function.

Forward statements are kept as recorded; each recorded backward pass becomes the statements
the eager backward executed (bound ``backward`` calls, un-broadcasts only where the trace needed
them, leaf accumulation, gradient sums in the same order). Locals are deleted after their last
use and saved arrays dropped after their node, so a replay holds no more memory than eager.
"""

from __future__ import annotations

import re

from gradstep.autograd import Scratch
from gradstep.tracing.ir import Backward, GradStep, NodeStep, Op, Stmt
from gradstep.tracing.recorder import Tracer

#: Ops whose output is smaller than this allocate as in eager execution. Measured on the
#: benchmark: NumPy hands out small arrays from its own cache faster than an op can look up a
#: kept one (scratch made (a) and (b) 2% slower), while arrays past glibc's mmap threshold
#: (128 KiB) are fresh pages every step (scratch made (c) 15% and (d) 2% faster).
SCRATCH_MIN_BYTES = 128 * 1024


def _scratches(tracer: Tracer, escaping: set) -> dict:
    """One Scratch per op that can use it, denying the results that escape the step.

    An op's output escapes when the step returns it or assigns it as a ``.grad``; an input's
    gradient escapes when a leaf adopts it (it becomes the parameter's ``.grad``, which the
    user and the optimizer may keep). Everything else is overwritten by the next replay only.
    A parameter held by an optimizer's flat buffer is the exception: its gradient is written
    into its home there (``Scratch.homes``), which is where the optimizer reads it from; the
    pairs (op, input position) that do so are left in ``tracer.homed``.
    """
    deny: dict = {}
    homes: dict = {}
    ops = [st for st in tracer.lines if isinstance(st, Op)]
    for st in ops:
        if type(st.fn).uses_scratch:
            deny[id(st.fn)] = {"out"} if st.writes in escaping else set()
            homes[id(st.fn)] = {}
    for entry in tracer.lines:
        if not isinstance(entry, Backward):
            continue
        for node_step, grad_steps in entry.groups():
            node = node_step.fn
            if id(node) not in deny:
                continue
            records = [g for g in grad_steps if g.kind == "leaf"]
            leaves = [g.tensor for g in records]
            for g in records:
                t, pos = g.tensor, g.pos
                deny[id(node)].add(f"g{pos}")
                home = getattr(t, "_home", None)
                if (
                    home is not None
                    and id(t) not in tracer.arguments
                    and not g.reshaped
                    and home.shape == t.data.shape
                    and home.dtype == t.data.dtype
                    and sum(leaf is t for leaf in leaves) == 1
                ):
                    homes[id(node)][f"g{pos}"] = (t, home)
                    tracer.homed.add((id(node), pos))
    out = {}
    for st in ops:
        fn = st.fn
        if id(fn) in deny:
            keep = st.out_bytes >= SCRATCH_MIN_BYTES
            if keep or homes[id(fn)]:
                out[id(fn)] = Scratch(deny[id(fn)], homes[id(fn)], keep)
    return out


def _backward_lines(tracer: Tracer, bw: Backward, saved: dict) -> list:
    """Statements for one recorded backward pass (same order as the eager one)."""
    out: list = []
    upstream = f"g_{bw.root}"
    out.append(Stmt(f"{upstream} = {bw.seed}", bw.root))
    after: list = []
    result = "r"
    tupled = False
    current = None
    for step in bw.steps:
        if isinstance(step, NodeStep):
            t, node = step.tensor, step.fn
            current = node
            out.extend(after)
            tupled = step.tupled
            if id(t) not in tracer.expr:
                tracer.fail("backward() through ops that ran before the step")
                return out
            g = upstream = f"g_{tracer.expr[id(t)]}"
            result = tracer.name(f"{tracer.expr[id(t)]}_grads")
            back = tracer.constant(node.backward, f"{tracer.expr[id(t)]}_backward")
            out.append(Stmt(f"{result} = {back}({g})"))
            after = [Stmt(f"del {g}")]
            if not step.retain and saved.get(id(node), 0) >= SCRATCH_MIN_BYTES:
                after.append(Stmt(_clear(tracer, node)))  # free saved arrays, as eager does
            continue
        assert isinstance(step, GradStep)
        t = step.tensor
        x = f"{result}[{step.pos}]" if tupled else result
        if step.reshaped:
            x = f"_unbroadcast({x}, {tracer.constant(t.data.shape, 'shape')})"
        if step.kind == "leaf":
            target = tracer.leaf.get(id(t))
            if target is None:
                tracer.fail("a tensor created inside the step requires grad")
                target = "None"
            tracer.accumulated.add(target)
            acc = "_acch" if (id(current), step.pos) in tracer.homed else "_acc"
            out.append(Stmt(f"{acc}({target}, {x}, {upstream})"))
        else:
            g = f"g_{tracer.expr[id(t)]}"
            if step.kind == "first":
                out.append(Stmt(f"{g} = {x}"))
            else:
                out.append(Stmt(f"{g} = {g} + {x}"))
    out.extend(after)
    return out


def _clear(tracer: Tracer, fn) -> str:
    """A statement dropping what ``fn`` saved for backward, keeping needs_input_grad and the
    scratch arrays (which are what a replay reuses)."""
    d = tracer.constant(fn.__dict__, "saved")
    keep = {"needs_input_grad": fn.needs_input_grad}
    if "scratch" in fn.__dict__:
        keep["scratch"] = fn.scratch
    return f"{d}.clear(); {d}.update({tracer.constant(keep, 'kept')})"


def replay_source(
    tracer: Tracer, n_inputs: int, input_kinds: list, kw_names: list, returned: list, escaping: set
) -> str:
    """Source of ``_replay(x0, x1, ..., **kw)``: one statement per recorded array call.

    ``escaping`` names the values whose memory outlives a replay (returned, or views of them):
    they never live in scratch arrays.
    """
    backwards = [e for e in tracer.lines if isinstance(e, Backward)]
    backed = {id(st.fn) for bw in backwards for st in bw.steps if isinstance(st, NodeStep)}
    # small saved arrays are simply replaced by the next replay (measured: clearing them cost
    # 0.1 us a node at (a)); large ones are dropped where eager execution drops them
    saved = {id(st.fn): st.saved_bytes for st in tracer.lines if isinstance(st, Op)}
    scratches = _scratches(tracer, escaping | tracer.names_sharing(tracer.assigned))
    for st in tracer.lines:
        if isinstance(st, Op) and id(st.fn) in scratches:
            st.fn.scratch = scratches[id(st.fn)]
    lines: list = []
    for entry in tracer.lines:
        if isinstance(entry, Backward):
            lines.extend(_backward_lines(tracer, entry, saved))
            continue
        lines.append(entry)
        if (
            isinstance(entry, Op)
            and id(entry.fn) not in backed
            and entry.saved_bytes >= SCRATCH_MIN_BYTES
        ):  # no backward uses what this op saved: drop it now, as eager garbage would be
            lines.append(Stmt(_clear(tracer, entry.fn)))
    returned_names = set(returned)
    last_read: dict[str, int] = {}
    known = tracer.values | {f"a{i}" for i in range(len(input_kinds))}
    for i, st in enumerate(lines):
        for tok in names(st.reads, known):
            last_read[tok] = i
    body = [f"x{n_inputs + j} = kw[{k!r}]" for j, k in enumerate(kw_names)]
    for i, kind in enumerate(input_kinds):
        if kind == "tensor":
            body.append(f"a{i} = x{i}.data")
        elif kind == "array":
            body.append(f"a{i} = x{i}")
    frees: dict[int, list] = {}
    for name, i in last_read.items():
        if name in tracer.values and name not in returned_names:
            frees.setdefault(i, []).append(name)
    for i, st in enumerate(lines):
        code, writes = st.code, st.writes
        if writes is not None and writes not in last_read and writes not in returned_names:
            code = code.split(" = ", 1)[1]  # computed for its side effects only
        body.append(code)
        if i in frees:
            body.append("del " + ", ".join(sorted(frees[i])))
    body.append(f"return ({', '.join(returned)}{',' if returned else ''})")
    params = [f"x{i}" for i in range(n_inputs)] + ["**kw"]
    src = f"def _replay({', '.join(params)}):\n    " + "\n    ".join(body) + "\n"
    return src


def names(reads: str, known: set) -> list:
    """The names of ``known`` (the replay's values, its arguments' arrays) that the
    space-joined expressions ``reads`` use."""
    return [tok for tok in re.findall(r"[A-Za-z_]\w*", reads) if tok in known]
