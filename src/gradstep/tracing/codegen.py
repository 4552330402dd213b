"""From a tracer's records to the source of one replay function.

Forward statements are kept as recorded; each recorded backward pass becomes the statements
the eager backward executed (bound ``backward`` calls, un-broadcasts only where the trace needed
them, leaf accumulation, gradient sums in the same order). Locals are deleted after their last
use and saved arrays dropped after their node, so a replay holds no more memory than eager.
"""

from __future__ import annotations

from gradstep.autograd import Scratch
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
    for i, fn in tracer.op_lines.items():
        if type(fn).uses_scratch:
            deny[id(fn)] = {"out"} if tracer.lines[i][2] in escaping else set()
            homes[id(fn)] = {}
    for entry in tracer.lines:
        if entry[0] != "backward":
            continue
        groups: list = []  # [node, its leaf records]
        for r in entry[3]:
            if r[0] == "node":
                groups.append((r[2], []))
            elif r[0] == "leaf":
                groups[-1][1].append(r)
        for node, records in groups:
            if id(node) not in deny:
                continue
            leaves = [r[1] for r in records]
            for _, t, _, pos, reshaped in records:
                deny[id(node)].add(f"g{pos}")
                home = getattr(t, "_home", None)
                if (
                    home is not None
                    and tracer.leaf.get(id(t), "").startswith("K")  # not an argument
                    and not reshaped
                    and home.shape == t.data.shape
                    and home.dtype == t.data.dtype
                    and sum(leaf is t for leaf in leaves) == 1
                ):
                    homes[id(node)][f"g{pos}"] = (t, home)
                    tracer.homed.add((id(node), pos))
    out = {}
    for fn in tracer.op_lines.values():
        if id(fn) in deny:
            keep = tracer.op_bytes[id(fn)] >= SCRATCH_MIN_BYTES
            if keep or homes[id(fn)]:
                out[id(fn)] = Scratch(deny[id(fn)], homes[id(fn)], keep)
    return out


def _backward_lines(tracer: Tracer, root_expr: str, seed: str, rec: list) -> list:
    """Statements for one recorded backward pass (same order as the eager one)."""
    out: list = []
    out.append((f"g{root_expr} = {seed}", root_expr, None))
    upstream = f"g{root_expr}"
    after: list = []
    result = "r"
    tupled = False
    current = None
    for kind, t, node, a, b in rec:
        if kind == "node":
            current = node
            out.extend(after)
            tupled, retain = a, b
            if id(t) not in tracer.expr:
                tracer.fail("backward() through ops that ran before the step")
                return out
            g = upstream = f"g{tracer.expr[id(t)]}"
            result = tracer.name("r")
            back = tracer.constant(node.backward)
            out.append((f"{result} = {back}({g})", "", None))
            after = [(f"del {g}", "", None)]
            if not retain and _worth_clearing(tracer, node):  # free saved arrays, as eager does
                after.append((_clear(tracer, node), "", None))
            continue
        x = f"{result}[{a}]" if tupled else result
        if b:
            x = f"_unbroadcast({x}, {tracer.constant(t.data.shape)})"
        if kind == "leaf":
            target = tracer.leaf.get(id(t))
            if target is None:
                tracer.fail("a tensor created inside the step requires grad")
                target = "None"
            tracer.accumulated.add(target)
            acc = "_acch" if (id(current), a) in tracer.homed else "_acc"
            out.append((f"{acc}({target}, {x}, {upstream})", "", None))
        else:
            g = f"g{tracer.expr[id(t)]}"
            if kind == "first":
                out.append((f"{g} = {x}", "", None))
            else:
                out.append((f"{g} = {g} + {x}", "", None))
    out.extend(after)
    return out


def _worth_clearing(tracer: Tracer, fn) -> bool:
    """Whether dropping what ``fn`` saved frees enough to pay for the statement: small saved
    arrays are simply replaced by the next replay (measured: 0.1 us a node at (a))."""
    return tracer.saved_bytes[id(fn)] >= SCRATCH_MIN_BYTES


def _clear(tracer: Tracer, fn) -> str:
    """A statement dropping what ``fn`` saved for backward, keeping needs_input_grad and the
    scratch arrays (which are what a replay reuses)."""
    d = tracer.constant(fn.__dict__)
    keep = {"needs_input_grad": fn.needs_input_grad}
    if "scratch" in fn.__dict__:
        keep["scratch"] = fn.scratch
    return f"{d}.clear(); {d}.update({tracer.constant(keep)})"


def replay_source(
    tracer: Tracer, n_inputs: int, input_kinds: list, kw_names: list, returned: list, escaping: set
) -> str:
    """Source of ``_replay(x0, x1, ..., **kw)``: one statement per recorded array call.

    ``escaping`` names the values whose memory outlives a replay (returned, or views of them):
    they never live in scratch arrays.
    """
    backed = {id(r[2]) for e in tracer.lines if e[0] == "backward" for r in e[3] if r[2]}
    scratches = _scratches(tracer, escaping | tracer.names_sharing(tracer.assigned))
    for fn in tracer.op_lines.values():
        if id(fn) in scratches:
            fn.scratch = scratches[id(fn)]
    lines = []
    for i, entry in enumerate(tracer.lines):
        if entry[0] == "backward":
            lines.extend(_backward_lines(tracer, *entry[1:]))
            continue
        lines.append(entry)
        fn = tracer.op_lines.get(i)
        if fn is not None and id(fn) not in backed and _worth_clearing(tracer, fn):
            # no backward uses what this op saved: drop it now, as eager garbage would be
            lines.append((_clear(tracer, fn), "", None))
    returned_names = set(returned)
    last_read: dict[str, int] = {}
    for i, (_, reads, _) in enumerate(lines):
        for tok in names(reads):
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


def names(reads: str) -> list:
    """Variable names (v12, a0) inside a space-joined list of expressions."""
    out = []
    for ch in "()[],":
        reads = reads.replace(ch, " ")
    for part in reads.split():
        part = part.split("=")[-1].split(".")[0].split("[")[0]
        if part[:1] in ("v", "a") and part[1:].isdigit():
            out.append(part)
    return out
