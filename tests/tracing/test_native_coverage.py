"""Every op of the op-case table, and every other Function class of gradstep.ops, has a native
kernel (tested in test_native.py) or is listed in docs/compile.md as replayed with NumPy; the
list there is the code's, checked here."""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re

import numpy as np
import pytest

import gradstep as gs
import gradstep.ops
from gradstep.autograd import Function
from tests.ops.cases import CASES, draw_values, shift_apart

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "compile.md")
#: The ops whose kernels tests/tracing/test_native.py checks against eager execution.
TESTED_NATIVE = {
    "Linear",
    "Sigmoid",
    "ReLU",
    "LeakyReLU",
    "Tanh",
    "MSE",
    "L1",
    "Huber",
    "CrossEntropy",
}

SHAPES = {
    "unary": [(3, 4)],
    "rows": [(3, 4)],
    "binary": [(3, 4), (3, 4)],
    "same": [(3, 4), (3, 4)],
    "join": [(2, 4), (3, 4)],
    "classify": [(4, 5)],
    "matmul": [(3, 4), (4, 2)],
    "linear": [(3, 4), (2, 4), (2,)],
}


def op_classes(case) -> set:
    """The Function classes the case's gradstep function builds its graph from."""
    rng = np.random.default_rng(0)
    arrays = [draw_values(rng, s, d) for s, d in zip(SHAPES[case.kind], case.domain)]
    arrays = shift_apart(arrays, case.domain, rng)
    leaves = [gs.Tensor(a, requires_grad=True, dtype=np.float64) for a in arrays]
    out = case.gs(*leaves)
    outs = out if isinstance(out, (tuple, list)) else [out]
    seen, stack, classes = set(), [o._node for o in outs if o._node is not None], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        classes.add(type(node))
        for t in node.inputs or ():
            if isinstance(t, gs.Tensor) and t._node is not None:
                stack.append(t._node)
    return classes


def documented() -> tuple[set, set]:
    with open(DOC) as f:
        text = f.read()
    native = set(
        re.findall(r"`(\w+)`", text.split("## Ops with a native kernel")[1].split("##")[0])
    )
    replayed = set(
        re.findall(r"`(\w+)`", text.split("## Ops replayed with NumPy")[1].split("##")[0])
    )
    return native, replayed


def ops_defined() -> set:
    """Every public Function class of gradstep.ops, table row or not (Dropout, BatchNorm)."""
    out = set()
    for info in pkgutil.iter_modules(gradstep.ops.__path__):
        module = importlib.import_module(f"gradstep.ops.{info.name}")
        for name, c in vars(module).items():
            if (
                inspect.isclass(c)
                and issubclass(c, Function)
                and c.__module__ == module.__name__
                and not name.startswith("_")
            ):
                out.add(c)
    return out


ALL = sorted(
    {c for case in CASES for c in op_classes(case)} | ops_defined(), key=lambda c: c.__name__
)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_each_op_of_the_table_is_native_and_tested_or_listed_as_replayed(cls):
    native, replayed = documented()
    name = cls.__name__
    has_kernel = callable(getattr(cls, "lower", None)) and callable(
        getattr(cls, "lower_backward", None)
    )
    if has_kernel:
        assert name in TESTED_NATIVE and name in native, name
    else:
        assert name in replayed, f"{name}: list it in docs/compile.md under 'replayed with NumPy'"


def test_the_documented_lists_name_no_op_that_is_not_in_the_table():
    native, replayed = documented()
    names = {c.__name__ for c in ALL}
    assert native == TESTED_NATIVE
    assert replayed <= names and not (replayed & native)
