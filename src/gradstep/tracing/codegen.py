"""From a tracer's records to the source of one replay function.

Forward statements are kept as recorded; each recorded backward pass becomes the statements
the eager backward executed (bound ``backward`` calls, un-broadcasts only where the trace needed
them, leaf accumulation, gradient sums in the same order). Locals are deleted after their last
use and saved arrays dropped after their node, so a replay holds no more memory than eager.
"""

from __future__ import annotations

import re

from gradstep.tracing.ir import Backward, GradStep, NodeStep, Op, Stmt
from gradstep.tracing.recorder import Tracer

#: Saved arrays at least this large are dropped where eager execution drops them (after their
#: node's backward, or at once when no backward needs them); smaller ones are simply replaced
#: by the next replay (measured: clearing them cost 0.1 us a node at (a)).
CLEAR_MIN_BYTES = 128 * 1024


def _backward_lines(tracer: Tracer, bw: Backward, saved: dict) -> list:
    """Statements for one recorded backward pass (same order as the eager one)."""
    out: list = []
    upstream = f"g_{bw.root}"
    out.append(Stmt(f"{upstream} = {bw.seed}", bw.root))
    after: list = []
    result = "r"
    tupled = False
    for step in bw.steps:
        if isinstance(step, NodeStep):
            t, node = step.tensor, step.fn
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
            if not step.retain and saved.get(id(node), 0) >= CLEAR_MIN_BYTES:
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
            out.append(Stmt(f"_acc({target}, {x}, {upstream})"))
        else:
            g = f"g_{tracer.expr[id(t)]}"
            if step.kind == "first":
                out.append(Stmt(f"{g} = {x}"))
            else:
                out.append(Stmt(f"{g} = {g} + {x}"))
    out.extend(after)
    return out


def _clear(tracer: Tracer, fn) -> str:
    """A statement dropping what ``fn`` saved for backward, keeping needs_input_grad."""
    d = tracer.constant(fn.__dict__, "saved")
    keep = {"needs_input_grad": fn.needs_input_grad}
    return f"{d}.clear(); {d}.update({tracer.constant(keep, 'kept')})"


def replay_source(
    tracer: Tracer, n_inputs: int, input_kinds: list, kw_names: list, returned: list
) -> str:
    """Source of ``_replay(x0, x1, ..., **kw)``: one statement per recorded array call."""
    backwards = [e for e in tracer.lines if isinstance(e, Backward)]
    backed = {id(st.fn) for bw in backwards for st in bw.steps if isinstance(st, NodeStep)}
    saved = {id(st.fn): st.saved_bytes for st in tracer.lines if isinstance(st, Op)}
    lines: list = []
    for entry in tracer.lines:
        if isinstance(entry, Backward):
            lines.extend(_backward_lines(tracer, entry, saved))
            continue
        lines.append(entry)
        if (
            isinstance(entry, Op)
            and id(entry.fn) not in backed
            and entry.saved_bytes >= CLEAR_MIN_BYTES
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
