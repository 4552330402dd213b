"""The trace as named records: what :mod:`.recorder` writes and both backends lower.

A trace is a list of statements in the order the step ran them:

* :class:`Op` -- ``out = fn.forward(*args, **params)`` of one Function instance;
* :class:`Call` -- a :func:`~gradstep.autograd.replayable` call (``optimizer.step()``),
  re-run as it is;
* :class:`Stmt` -- any other statement (a conversion beside the graph, a ``.grad`` set);
* :class:`Backward` -- one ``backward()``: the root, its seed, and the engine's decisions in
  order, a :class:`NodeStep` per node whose backward ran and a :class:`GradStep` per input
  gradient it routed (to a leaf, or to a tensor waiting for its first or a further one).

Every statement carries the replay's source line (``code``), the names it reads and the name
it writes, so the NumPy replay (:mod:`.codegen`) can emit it as it is; the native lowering
(:mod:`.native`) reads the fields instead. Values are named after what made them: ``linear1``
(the first Linear's output), ``p_0_weight`` (the parameter ``0.weight``), ``a0`` (the first
argument's array).
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import Any


def fresh_name(used: dict, hint: str) -> str:
    """A new identifier made from ``hint``, counted in ``used``: ``linear`` -> ``linear1``,
    ``linear2``; a hint ending in a digit or with an underscore part (``g_linear2``,
    ``p_0_weight``) is kept as it is the first time and suffixed (``_2``) after that."""
    hint = re.sub(r"\W", "_", hint).strip("_").lower() or "value"
    if hint[0].isdigit() or keyword.iskeyword(hint):
        hint = f"v_{hint}"
    n = used[hint] = used.get(hint, 0) + 1
    if hint[-1].isdigit() or "_" in hint:
        return hint if n == 1 else f"{hint}_{n}"
    return f"{hint}{n}"


@dataclass
class Stmt:
    """One statement of the replay: its source, the names it reads, the name it writes."""

    code: str
    reads: str = ""
    writes: str | None = None


@dataclass
class Op(Stmt):
    """``writes = fn.forward(*args, **params)``; ``args`` are the traced arguments (Tensors,
    arrays, Python values) as the op got them."""

    fn: Any = None
    args: tuple = ()
    params: dict = field(default_factory=dict)
    saved_bytes: int = 0  # of what forward kept for backward


@dataclass
class Call(Stmt):
    """A replayable call: ``func(*args, **kwargs)`` again at this point of every replay."""

    func: Any = None
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class NodeStep:
    """The backward of ``fn`` ran on the gradient of its output ``tensor``; ``tupled``: it
    returned a tuple; ``retain``: the graph was kept (retain_graph)."""

    tensor: Any
    fn: Any
    tupled: bool
    retain: bool


@dataclass(frozen=True)
class GradStep:
    """The gradient for input ``pos`` of the last node went to ``tensor``: ``kind`` is "leaf"
    (accumulated into its ``.grad``), "first" (the tensor's first) or "add" (a further one,
    summed); ``reshaped``: it was summed over broadcast dimensions first."""

    kind: str
    tensor: Any
    pos: int
    reshaped: bool


@dataclass
class Backward:
    """One ``backward()`` of the step, filled by the engine as it runs (``node``/``grad``)."""

    root: str
    seed: str
    steps: list = field(default_factory=list)

    def node(self, tensor, fn, tupled: bool, retain: bool) -> None:
        self.steps.append(NodeStep(tensor, fn, tupled, retain))

    def grad(self, kind: str, tensor, pos: int, reshaped: bool) -> None:
        self.steps.append(GradStep(kind, tensor, pos, reshaped))

    def groups(self) -> list:
        """[(NodeStep, [its GradSteps])] in order."""
        out: list = []
        for s in self.steps:
            if isinstance(s, NodeStep):
                out.append((s, []))
            else:
                out[-1][1].append(s)
        return out
