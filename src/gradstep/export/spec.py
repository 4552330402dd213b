"""What an export writes, checked once: the layers, the transforms around them, the task.

:func:`prepare` turns a gradstep ``Sequential`` (or a fitted ``MLPRegressor`` /
``MLPClassifier``, or a ``TabularModel``) plus the optional transforms into an
:class:`ExportSpec` of plain NumPy arrays. Both writers (ONNX and PyTorch) read only this, so
they agree on what the model is, and every mistake is reported here, before a file is touched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from gradstep.nn import layers as L
from gradstep.nn.module import Module

_KINDS = {
    L.Linear: "linear",
    L.ReLU: "relu",
    L.Sigmoid: "sigmoid",
    L.Tanh: "tanh",
    L.LeakyReLU: "leaky_relu",
    L.Softplus: "softplus",
    L.Identity: "identity",
    L.Dropout: "dropout",
    L.Flatten: "flatten",
}
SUPPORTED = ", ".join(sorted(t.__name__ for t in _KINDS))
_INPUT_KEYS = {"fill", "indicator_columns", "mean", "scale"}
_OUTPUT_KEYS = {"mean", "scale"}


@dataclass
class Layer:
    """One exported layer: ``kind`` (see ``_KINDS``), its gradstep name and its numbers."""

    kind: str
    name: str
    weight: np.ndarray | None = None  # float32, of shape (out_features, in_features)
    bias: np.ndarray | None = None  # float32, of shape (out_features,)
    slope: float = 0.01  # LeakyReLU
    p: float = 0.0  # Dropout (exported for evaluation: the identity)


@dataclass
class ExportSpec:
    """A model ready to write. Transform arrays are float64; absent ones are None."""

    layers: list[Layer]
    n_features: int
    n_outputs: int
    task: str = "regression"
    classes: list = field(default_factory=list)
    fill: np.ndarray | None = None  # of shape (n_features,)
    indicator_columns: list[int] = field(default_factory=list)
    mean: np.ndarray | None = None  # of shape (n_features + len(indicator_columns),)
    scale: np.ndarray | None = None
    out_mean: np.ndarray | None = None  # of shape () or (n_outputs,)
    out_scale: np.ndarray | None = None
    feature_names: list = field(default_factory=list)  # the raw columns, where known
    input_note: str = ""  # what the input is, for the generated module's docstring

    @property
    def has_preprocess(self) -> bool:
        return any(v is not None for v in (self.fill, self.mean, self.scale)) or bool(
            self.indicator_columns
        )

    @property
    def has_postprocess(self) -> bool:
        return self.out_mean is not None or self.out_scale is not None


def check_destination(path, what: str) -> str:
    """``path`` as a string, after checking that its folder exists and it is not a folder."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{what}: cannot write {path}: the folder {folder} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{what}: cannot write {path}: it is a folder, not a file")
    return path


def flatten_layers(model, what: str, prefix: str = "") -> list[Layer]:
    """The supported layers of ``model`` in order, nested ``Sequential`` s unrolled."""
    if isinstance(model, L.Sequential) and type(model).forward is L.Sequential.forward:
        out = []
        for name, child in model._modules.items():
            out += flatten_layers(child, what, f"{prefix}{name}.")
        return out
    name = prefix[:-1] or type(model).__name__
    kind = _KINDS.get(type(model))
    if kind is None:
        raise ValueError(
            f"{what}: layer '{name}' ({type(model).__name__}) is not supported; a model must be a "
            f"Sequential of {SUPPORTED}"
        )
    layer = Layer(kind, name)
    if kind == "linear":
        layer.weight = np.asarray(model.weight.data, dtype=np.float32)
        layer.bias = None if model.bias is None else np.asarray(model.bias.data, np.float32)
    elif kind == "leaky_relu":
        layer.slope = float(model.negative_slope)
    elif kind == "dropout":
        layer.p = float(model.p)
    return [layer]


def _vector(transform: dict, key: str, length: int, what: str) -> np.ndarray | None:
    if transform.get(key) is None:
        return None
    v = np.asarray(transform[key], dtype=np.float64)
    if v.shape != (length,):
        raise ValueError(
            f"{what}: input_transform['{key}'] must have shape ({length},), got {v.shape}"
        )
    if not np.all(np.isfinite(v)) or (key == "scale" and np.any(v == 0)):
        raise ValueError(f"{what}: input_transform['{key}'] must be finite (and scale non-zero)")
    return v


def _columns(transform: dict, n_features: int, what: str) -> list[int]:
    cols = transform.get("indicator_columns")
    cols = [] if cols is None else list(cols)
    bad = [c for c in cols if not isinstance(c, (int, np.integer)) or not 0 <= c < n_features]
    if bad or len(set(cols)) != len(cols):
        raise ValueError(
            f"{what}: input_transform['indicator_columns'] must be distinct column indices in "
            f"[0, {n_features}), got {cols}"
        )
    return [int(c) for c in cols]


def _infer_n_features(layers, transform: dict, n_ind: int, what: str) -> int:
    """From the first Linear (the transforms are then checked against it), else the fill."""
    first = next((ly for ly in layers if ly.kind == "linear"), None)
    if first is not None:
        return first.weight.shape[1] - n_ind
    if transform.get("fill") is not None:
        return int(np.size(transform["fill"]))
    raise ValueError(f"{what}: the model has no Linear layer to tell its width; pass n_features=")


def _widths(layers, width: int, what: str) -> int:
    for ly in layers:
        if ly.kind == "linear":
            if ly.weight.shape[1] != width:
                raise ValueError(
                    f"{what}: layer '{ly.name}' (Linear) expects {ly.weight.shape[1]} inputs but "
                    f"receives {width} (n_features plus one column per missing-value indicator)"
                )
            width = ly.weight.shape[0]
    return width


def _output(spec: ExportSpec, transform, what: str) -> None:
    if not transform:
        return
    unknown = set(transform) - _OUTPUT_KEYS
    if unknown:
        raise ValueError(
            f"{what}: unknown output_transform keys {sorted(unknown)}; use 'mean', 'scale'"
        )
    for key in ("mean", "scale"):
        if transform.get(key) is None:
            continue
        v = np.asarray(transform[key], dtype=np.float64)
        if v.ndim > 1 or (v.ndim == 1 and v.shape != (spec.n_outputs,)) or not np.isfinite(v).all():
            raise ValueError(
                f"{what}: output_transform['{key}'] must be a finite number or have shape "
                f"({spec.n_outputs},), got {transform[key]!r}"
            )
        setattr(spec, "out_" + key, v)


def _classes(classes, n_outputs: int, what: str) -> list:
    if classes is None:
        classes = list(range(n_outputs))
    classes = [c.item() if isinstance(c, np.generic) else c for c in classes]
    if len(classes) != n_outputs or len(set(classes)) != len(classes):
        raise ValueError(
            f"{what}: classes must be {n_outputs} distinct labels (one per model output), got "
            f"{classes!r}"
        )
    return classes


def prepare(model, *, n_features, input_transform, output_transform, task, classes, what):
    """Check everything and return the :class:`ExportSpec` (see the module docstring)."""
    if not isinstance(model, Module):
        from gradstep.export.tabular import is_tabular, prepare_tabular

        if is_tabular(model):
            return prepare_tabular(
                model, n_features, input_transform, output_transform, task, classes, what
            )
        from gradstep.export.estimators import from_estimator

        return prepare(
            **from_estimator(
                model, n_features, input_transform, output_transform, task, classes, what
            )
        )
    task = task or "regression"
    if task not in ("regression", "classification"):
        raise ValueError(f"{what}: task must be 'regression' or 'classification', got {task!r}")
    layers = flatten_layers(model, what)
    transform = dict(input_transform or {})
    unknown = set(transform) - _INPUT_KEYS
    if unknown:
        raise ValueError(
            f"{what}: unknown input_transform keys {sorted(unknown)}; use {sorted(_INPUT_KEYS)}"
        )
    n_ind = len(transform.get("indicator_columns") or [])
    if n_features is None:
        n_features = _infer_n_features(layers, transform, n_ind, what)
    if not isinstance(n_features, (int, np.integer)) or n_features < 1:
        raise ValueError(f"{what}: n_features must be a positive integer, got {n_features!r}")
    cols = _columns(transform, int(n_features), what)
    width = int(n_features) + len(cols)
    spec = ExportSpec(layers, int(n_features), _widths(layers, width, what), task)
    spec.indicator_columns = cols
    spec.fill = _vector(transform, "fill", spec.n_features, what)
    spec.mean = _vector(transform, "mean", width, what)
    spec.scale = _vector(transform, "scale", width, what)
    if task == "classification":
        if output_transform:
            raise ValueError(f"{what}: output_transform is for regression; a classifier has none")
        spec.classes = _classes(classes, spec.n_outputs, what)
    else:
        if classes is not None:
            raise ValueError(f"{what}: classes= needs task='classification'")
        _output(spec, output_transform, what)
    return spec
