"""``to_onnx``: a gradstep MLP (and its preprocessing) as one ONNX graph.

The graph takes ``features``, float32 of shape (N, n_features) with a dynamic batch, and runs:

1. preprocessing in float64 (so a large feature mean costs no precision): NaN -> ``fill``
   (IsNaN + Where), 0/1 "was missing" columns appended for ``indicator_columns`` (Gather +
   Concat), then ``(x - mean) / scale``; cast to float32;
2. the network: Gemm per Linear, Relu, Sigmoid, Tanh, LeakyRelu, Softplus, Flatten; Dropout and
   Identity add nothing (evaluation mode);
3. regression: ``prediction`` = net * scale + mean (in float64, then float32), shape (N, n_out);
   classification: ``probabilities`` = Softmax (N, C) and ``label`` = the class of the largest
   logit (ArgMax, then Gather from a constant tensor of the labels), shape (N,).

``onnx`` is imported here only, when a model is exported.
"""

from __future__ import annotations

import json

import numpy as np

from gradstep.export.spec import ExportSpec, check_destination, prepare

_ACTIVATIONS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus"}
MIN_OPSET = 13  # Softmax over one axis, IsNaN on doubles
ML_OPSET = 3  # ai.onnx.ml: LabelEncoder-2 (strings -> int64 / float, with a default)


class _Graph:
    """Nodes and constants with generated names; ``x`` is the name of the current value."""

    def __init__(self, helper, numpy_helper, x: str):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers, self.x = [], [], x

    def const(self, name: str, value) -> str:
        self.initializers.append(self.numpy_helper.from_array(np.asarray(value), name=name))
        return name

    def op(self, op_type: str, inputs: list[str], out: str | None = None, **attrs) -> str:
        out = out or f"{op_type.lower()}_{len(self.nodes)}"
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def cast(self, x: str, to: int) -> str:
        return self.op("Cast", [x], to=to)


def _preprocess(g: _Graph, spec: ExportSpec, DOUBLE: int, FLOAT: int) -> None:
    if not spec.has_preprocess:
        return
    x = g.cast(g.x, DOUBLE)
    missing = g.op("IsNaN", [x]) if spec.fill is not None or spec.indicator_columns else None
    if spec.fill is not None:
        x = g.op("Where", [missing, g.const("fill", spec.fill), x])
    if spec.indicator_columns:
        cols = g.const("indicator_columns", np.array(spec.indicator_columns, dtype=np.int64))
        flags = g.op("Gather", [g.cast(missing, DOUBLE), cols], axis=1)
        x = g.op("Concat", [x, flags], axis=1)
    if spec.mean is not None:
        x = g.op("Sub", [x, g.const("mean", spec.mean)])
    if spec.scale is not None:
        x = g.op("Div", [x, g.const("scale", spec.scale)])
    g.x = g.cast(x, FLOAT)


def _network(g: _Graph, spec: ExportSpec) -> None:
    for i, ly in enumerate(spec.layers):
        if ly.kind == "linear":
            inputs = [g.x, g.const(f"{ly.name}.weight", ly.weight)]
            if ly.bias is not None:
                inputs.append(g.const(f"{ly.name}.bias", ly.bias))
            g.x = g.op("Gemm", inputs, f"linear_{i}", transB=1)
        elif ly.kind in _ACTIVATIONS:
            g.x = g.op(_ACTIVATIONS[ly.kind], [g.x], f"{ly.kind}_{i}")
        elif ly.kind == "leaky_relu":
            g.x = g.op("LeakyRelu", [g.x], f"leaky_relu_{i}", alpha=ly.slope)
        elif ly.kind == "flatten":
            g.x = g.op("Flatten", [g.x], f"flatten_{i}", axis=1)


def _label_tensor(classes: list) -> np.ndarray:
    """int64 for integer labels, float64 for other numbers, strings otherwise."""

    def number(c):
        return isinstance(c, (int, float)) and not isinstance(c, bool)

    if all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return np.array(classes, dtype=np.int64)
    if all(number(c) for c in classes):
        return np.array(classes, dtype=np.float64)
    return np.array([str(c) for c in classes], dtype=object)


def _outputs(g: _Graph, spec: ExportSpec, T) -> list:
    make = g.helper.make_tensor_value_info
    if spec.task == "classification":
        g.op("Softmax", [g.x], "probabilities", axis=1)
        index = g.op("ArgMax", [g.x], axis=1, keepdims=0)
        labels = _label_tensor(spec.classes)
        g.op("Gather", [g.const("classes", labels), index], "label", axis=0)
        label_type = g.helper.np_dtype_to_tensor_dtype(labels.dtype)
        return [
            make("probabilities", T.FLOAT, ["N", spec.n_outputs]),
            make("label", label_type, ["N"]),
        ]
    if spec.has_postprocess:
        y = g.cast(g.x, T.DOUBLE)
        if spec.out_scale is not None:
            y = g.op("Mul", [y, g.const("target_scale", spec.out_scale)])
        if spec.out_mean is not None:
            y = g.op("Add", [y, g.const("target_mean", spec.out_mean)])
        g.op("Cast", [y], "prediction", to=T.FLOAT)
    elif g.nodes and g.nodes[-1].output[0] == g.x:
        g.nodes[-1].output[0] = "prediction"
    else:
        g.op("Identity", [g.x], "prediction")
    return [make("prediction", T.FLOAT, ["N", spec.n_outputs])]


def check_opset(opset, what: str) -> None:
    """Refuse an opset outside [MIN_OPSET, the newest onnx knows]."""
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ValueError(
            f"{what}: opset must be an integer in [{MIN_OPSET}, {newest}], got {opset!r}"
        )


def finish(g: _Graph, inputs, outputs, opset: int, meta: dict, doc: str, ml: bool = False):
    """The checked ``onnx.ModelProto`` of ``g``; ``ml`` adds the ai.onnx.ml domain."""
    import onnx
    from onnx import helper

    graph = helper.make_graph(g.nodes, "gradstep", inputs, outputs, g.initializers)
    opsets = [helper.make_opsetid("", opset)]
    if ml:
        opsets.append(helper.make_opsetid("ai.onnx.ml", ML_OPSET))
    model = helper.make_model(
        graph,
        opset_imports=opsets,
        ir_version=helper.find_min_ir_version_for(opsets),
        producer_name="gradstep",
        doc_string=doc,
    )
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model, full_check=True)
    return model


def build_onnx(spec: ExportSpec, input_name: str = "features", opset: int = 17, what="to_onnx"):
    """The checked ``onnx.ModelProto`` of ``spec``."""
    from onnx import TensorProto as T
    from onnx import helper, numpy_helper

    check_opset(opset, what)
    if input_name in ("prediction", "probabilities", "label") or not input_name:
        raise ValueError(f"{what}: input_name {input_name!r} is empty or an output's name")
    g = _Graph(helper, numpy_helper, input_name)
    _preprocess(g, spec, T.DOUBLE, T.FLOAT)
    _network(g, spec)
    outputs = _outputs(g, spec, T)
    taken = {t.name for t in g.initializers} | {o for n in g.nodes for o in n.output}
    if input_name in taken:
        raise ValueError(f"{what}: input_name {input_name!r} is already a name in the graph")
    inputs = [helper.make_tensor_value_info(input_name, T.FLOAT, ["N", spec.n_features])]
    meta = {"task": spec.task, "n_features": str(spec.n_features)}
    if spec.task == "classification":
        meta["classes"] = json.dumps(spec.classes, default=str)
    doc = f"gradstep {spec.task} model: {input_name} (N, {spec.n_features}) -> " + ", ".join(
        o.name for o in outputs
    )
    return finish(g, inputs, outputs, opset, meta, doc)


def _proto(model, what: str, input_name, opset, date_parts, **options):
    """The ONNX model of any exportable ``model`` (see :func:`to_onnx`)."""
    from gradstep.export.tabular import check_arguments, is_tabular

    if is_tabular(model):
        from gradstep.export.tabular_onnx import build_tabular_onnx

        check_arguments(model, what=what, **options)
        if input_name is not None:
            raise ValueError(
                f"{what}: input_name= is for a one-matrix model; a TabularModel's inputs are "
                "named after its columns"
            )
        return build_tabular_onnx(model, opset=opset, date_parts=bool(date_parts), what=what)
    if date_parts:
        raise ValueError(f"{what}: date_parts= is for a TabularModel (a gradstep train run)")
    spec = prepare(model, what=what, **options)
    return build_onnx(spec, "features" if input_name is None else input_name, opset, what)


def onnx_bytes(
    model,
    *,
    n_features: int | None = None,
    input_transform: dict | None = None,
    output_transform: dict | None = None,
    task: str | None = None,
    classes=None,
    input_name: str | None = None,
    opset: int = 17,
    date_parts: bool = False,
    _what: str = "onnx_bytes",
) -> bytes:
    """The ONNX file of ``model`` as bytes, for a caller that writes files itself.

    Takes the arguments of :func:`to_onnx` but the path; errors are reported before any byte
    is returned.
    """
    options = dict(
        n_features=n_features,
        input_transform=input_transform,
        output_transform=output_transform,
        task=task,
        classes=classes,
    )
    return _proto(model, _what, input_name, opset, date_parts, **options).SerializeToString()


def to_onnx(
    model,
    path,
    *,
    n_features: int | None = None,
    input_transform: dict | None = None,
    output_transform: dict | None = None,
    task: str | None = None,
    classes=None,
    input_name: str | None = None,
    opset: int = 17,
    date_parts: bool = False,
) -> str:
    """Write ``model`` and its transforms as an ONNX file at ``path``; return the path.

    Parameters
    ----------
    model : gradstep.nn.Sequential, a fitted MLPRegressor / MLPClassifier, or a TabularModel
        A Sequential of Linear, ReLU, Sigmoid, Tanh, LeakyReLU, Softplus, Identity, Dropout
        (exported as in eval mode) and Flatten. An estimator brings its own transforms, task
        and classes; a ``TabularModel`` (``gradstep train``'s run, from ``TabularModel.load``)
        brings its whole table encoder, so the graph takes one input per raw column (see
        :mod:`gradstep.export.tabular_onnx`) and none of the options below but ``task``,
        ``opset`` and ``date_parts`` apply.
    path : str or os.PathLike
        The file to write (atomically); its folder must exist.
    n_features : int, optional
        Width F of the raw input; inferred from the transforms or the first Linear.
    input_transform : dict, optional
        ``{"fill": (F,), "indicator_columns": [int], "mean": (F + K,), "scale": (F + K,)}``,
        every key optional, applied in that order (K = len(indicator_columns)).
    output_transform : dict, optional
        Regression only: ``{"mean": float or (n_out,), "scale": float or (n_out,)}``;
        prediction = net(x) * scale + mean.
    task : "regression" (default for a model) or "classification"
    classes : list of labels, optional
        Classification: one per output (default 0 .. C-1).
    input_name : str, optional
        The one input of a matrix model (default ``features``).
    opset : int, in [13, the newest onnx knows]
    date_parts : bool
        TabularModel only: take each date column as its four parts (input ``<col>__parts``,
        float64 of shape (N, 4)) instead of refusing it.

    Returns
    -------
    str
        ``path``. The graph's outputs are ``prediction`` (N, n_out) for regression, or
        ``probabilities`` (N, C) and ``label`` (N,) for classification.
    """
    from gradstep.io import atomic_write_bytes

    path = check_destination(path, "to_onnx")
    blob = onnx_bytes(
        model,
        n_features=n_features,
        input_transform=input_transform,
        output_transform=output_transform,
        task=task,
        classes=classes,
        input_name=input_name,
        opset=opset,
        date_parts=date_parts,
        _what="to_onnx",
    )
    atomic_write_bytes(path, blob)
    return path
