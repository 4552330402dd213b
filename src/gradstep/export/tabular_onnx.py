"""The ONNX graph of a ``TabularModel``: raw table columns in, the run's answers out.

One graph input per used column, in the encoder's column order, named after the column
(characters other than ASCII letters, digits and ``_`` become ``_``; a name already taken gets
a suffix ``_2``, ...; the metadata entry ``inputs`` records each input's column), of shape
(N, 1):

- numeric columns: float64 (double, so no value loses digits), NaN for a missing cell;
- boolean columns: float64 1/0, NaN for a missing cell;
- categorical columns: string, stripped of surrounding spaces as ``read_table`` gives them;
  ``""`` or any of ``read_table``'s missing markers (``NA``, ``?``, ...) is a missing cell;
- date columns: refused, unless ``date_parts=True``: then ``<col>__parts``, float64 of shape
  (N, 4) holding year, month, day of year and weekday (0 = Monday), NaN where missing.

Inside, in float64, the encoder's arithmetic in its layout: the numeric block (numbers,
booleans, date parts; Concat) has NaN replaced by the training median (IsNaN + Where) and is
standardised (Sub, Div), then come its missing indicators (Gather), one one-hot block per
categorical column (an ai.onnx.ml LabelEncoder maps each level to its index, a missing cell to
the most frequent level's, anything else to -1; Equal against 0 .. k-1 then gives an all-zero
row for an unseen level), and the categorical missing indicators (a second LabelEncoder). Then
a Cast to float32, the network and the outputs as for any model (:mod:`gradstep.export.onnx`).

A run trained with ``--missing drop`` or ``error`` refuses missing cells in gradstep; a graph
cannot refuse, so it imputes them as above (the metadata entry ``missing`` says which policy
the run had).
"""

from __future__ import annotations

import json
import re

import numpy as np

from gradstep.export.onnx import _Graph, _network, _outputs, check_opset, finish
from gradstep.export.tabular import network_spec

_OUTPUT_NAMES = {"prediction", "probabilities", "label"}
_ML = "ai.onnx.ml"


def _plan(encoder, date_parts: bool, what: str) -> list[dict]:
    """One entry per used column: its name, kind, width and a placeholder name in the graph."""
    plan = []
    for i, c in enumerate(encoder.columns_):
        if c.kind == "date" and not date_parts:
            raise ValueError(
                f"{what}: date column '{c.name}' cannot be parsed inside ONNX; pass "
                f"date_parts=True to feed its year, month, day of year and weekday as a float64 "
                f"input '{_safe(c.name)}__parts' of shape (N, 4), or train without it"
            )
        if c.kind not in ("numeric", "boolean", "date", "categorical"):
            raise ValueError(f"{what}: column '{c.name}' has kind {c.kind!r}, unknown to ONNX")
        width = 4 if c.kind == "date" else 1
        # a colon never survives _safe, so no placeholder can be a final name
        plan.append({"column": c.name, "kind": c.kind, "width": width, "slot": f"raw:{i}"})
    return plan


def _safe(column: str) -> str:
    name = re.sub(r"[^0-9A-Za-z_]", "_", str(column))
    return name if re.match(r"[A-Za-z_]", name) else "_" + name


def _name_inputs(plan: list[dict], taken: set) -> None:
    """Give each entry of ``plan`` a final input name, distinct from ``taken`` and each other."""
    used = set(taken) | _OUTPUT_NAMES
    for p in plan:
        base = _safe(p["column"]) + ("__parts" if p["kind"] == "date" else "")
        name, k = base, 2
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        p["name"] = name


def _numeric(g: _Graph, enc, slots: list[str], DOUBLE: int) -> list[str]:
    """The standardised numeric block and its missing indicators."""
    num = slots[0] if len(slots) == 1 else g.op("Concat", slots, axis=1)
    missing = g.op("IsNaN", [num])
    filled = g.op("Where", [missing, g.const("num_fill", enc.num_fill_), num])
    centred = g.op("Sub", [filled, g.const("num_mean", enc.mean_)])
    parts = [g.op("Div", [centred, g.const("num_scale", enc.scale_)])]
    if enc.num_indicator_:
        cols = g.const("num_indicator", np.array(enc.num_indicator_, dtype=np.int64))
        parts.append(g.cast(g.op("Gather", [missing, cols], axis=1), DOUBLE))
    return parts


def _categorical(g: _Graph, j: int, slot: str, levels: list, fill: str, DOUBLE: int):
    """The one-hot block of categorical column ``j`` and its 0/1 missing flag (float64)."""
    from gradstep.data.tabular import MISSING

    markers = [m for m in MISSING if m not in levels]
    fill_index = levels.index(fill) if fill in levels else -1
    index = g.op(
        "LabelEncoder",
        [slot],
        domain=_ML,
        keys_strings=list(levels) + markers,
        values_int64s=list(range(len(levels))) + [fill_index] * len(markers),
        default_int64=-1,
    )
    every = g.const(f"levels_{j}", np.arange(len(levels), dtype=np.int64)[None, :])
    hot = g.cast(g.op("Equal", [index, every]), DOUBLE)
    flag = g.op(
        "LabelEncoder",
        [slot],
        domain=_ML,
        keys_strings=markers,
        values_floats=[1.0] * len(markers),
        default_float=0.0,
    )
    return hot, g.cast(flag, DOUBLE)


def _encoder(g: _Graph, enc, plan: list[dict], T) -> None:
    """The encoder's matrix, in its layout, as float32 in ``g.x``."""
    slots = [p["slot"] for p in plan if p["kind"] != "categorical"]
    parts = _numeric(g, enc, slots, T.DOUBLE) if slots else []
    cats = [p["slot"] for p in plan if p["kind"] == "categorical"]
    flags = []
    for j, slot in enumerate(cats):
        hot, flag = _categorical(g, j, slot, enc.categories_[j], enc.cat_fill_[j], T.DOUBLE)
        parts.append(hot)
        flags.append(flag)
    parts += [flags[j] for j in enc.cat_indicator_]
    x = parts[0] if len(parts) == 1 else g.op("Concat", parts, axis=1)
    g.x = g.cast(x, T.FLOAT)


def build_tabular_onnx(tm, *, opset: int = 17, date_parts: bool = False, what: str = "to_onnx"):
    """The checked ``onnx.ModelProto`` of the ``TabularModel`` ``tm`` (see the module doc)."""
    from onnx import TensorProto as T
    from onnx import helper, numpy_helper

    check_opset(opset, what)
    enc = tm.encoder
    plan = _plan(enc, date_parts, what)
    spec = network_spec(tm, what)
    g = _Graph(helper, numpy_helper, "")
    _encoder(g, enc, plan, T)
    _network(g, spec)
    outputs = _outputs(g, spec, T)
    _name_inputs(plan, {t.name for t in g.initializers} | {o for n in g.nodes for o in n.output})
    final = {p["slot"]: p["name"] for p in plan}
    for node in g.nodes:
        for i, name in enumerate(node.input):
            if name in final:
                node.input[i] = final[name]
    inputs, described = [], []
    for p in plan:
        string = p["kind"] == "categorical"
        dtype = T.STRING if string else T.DOUBLE
        inputs.append(helper.make_tensor_value_info(p["name"], dtype, ["N", p["width"]]))
        described.append(
            {
                "name": p["name"],
                "column": p["column"],
                "kind": p["kind"],
                "dtype": "string" if string else "float64",
                "shape": ["N", p["width"]],
            }
        )
    meta = {"task": spec.task, "inputs": json.dumps(described), "missing": str(enc.missing)}
    target = getattr(getattr(tm, "config", None), "target", None)
    if target:
        meta["target"] = str(target)
    if spec.task == "classification":
        meta["classes"] = json.dumps(spec.classes, default=str)
    doc = (
        f"gradstep {spec.task} model on raw table columns: "
        + ", ".join(p["name"] for p in plan)
        + " -> "
        + ", ".join(o.name for o in outputs)
    )
    return finish(g, inputs, outputs, opset, meta, doc, ml=True)
