"""Exporting a ``TabularModel`` (a ``gradstep train`` run): what its parts mean.

A run's ``TabularModel`` holds the network (``.model``), the ``TableEncoder`` that turns raw
table columns into the network's input matrix (``.encoder``), the task, the classes, and the
target's mean and standard deviation (a regression learns the standardised target, so its
prediction is ``net(x) * y_std + y_mean``).

- ONNX (:mod:`gradstep.export.tabular_onnx`) rebuilds the whole encoder inside the graph, so
  the file takes the raw columns.
- PyTorch (:func:`prepare_tabular`) carries the encoder only where it is plain arithmetic: when
  every used column is numeric or boolean, the module takes those columns in order (NaN =
  missing) and imputes, adds the indicators and standardises; otherwise it takes the encoded
  matrix (``TableEncoder.transform``) and carries the network and the target's scaling only.

Duck-typed (anything with ``.encoder`` and ``.model``), so exporting never imports the training
code.
"""

from __future__ import annotations

import numpy as np

from gradstep.export.spec import ExportSpec, prepare


def is_tabular(model) -> bool:
    """Whether ``model`` looks like a ``TabularModel`` (has ``.encoder`` and ``.model``)."""
    return hasattr(model, "encoder") and hasattr(model, "model")


def check_arguments(tm, n_features, input_transform, output_transform, task, classes, what):
    """Refuse the options that a run decides itself."""
    if any(v is not None for v in (n_features, input_transform, output_transform, classes)):
        raise ValueError(
            f"{what}: the transforms, width and classes of a TabularModel come from its run; "
            "do not pass n_features=, input_transform=, output_transform= or classes="
        )
    if tm.task not in ("regression", "classification"):
        raise ValueError(f"{what}: this TabularModel's task {tm.task!r} is not one it can export")
    if task is not None and task != tm.task:
        raise ValueError(f"{what}: this TabularModel is a {tm.task} model, not {task}")


def _target(tm) -> dict:
    """The keyword arguments of :func:`prepare` that describe the target."""
    if tm.task == "classification":
        return {"task": "classification", "classes": list(tm.classes), "output_transform": None}
    scaling = {"mean": float(tm.y_mean), "scale": float(tm.y_std)}
    return {"task": "regression", "classes": None, "output_transform": scaling}


def network_spec(tm, what: str) -> ExportSpec:
    """The network and the target's scaling, taking the encoded matrix as its input."""
    return prepare(
        tm.model,
        n_features=int(tm.encoder.n_outputs),
        input_transform=None,
        what=what,
        **_target(tm),
    )


def numeric_only(encoder) -> bool:
    """Whether every used column is numeric or boolean (no categories, no dates)."""
    return all(c.kind in ("numeric", "boolean") for c in encoder.columns_)


def prepare_tabular(tm, n_features, input_transform, output_transform, task, classes, what):
    """The :class:`ExportSpec` of a ``TabularModel`` for a writer that takes one float matrix.

    Purely numeric encoders become the spec's input transform (fill, indicators, then
    standardisation of the numbers only: an indicator is 0/1 as it is); any other encoder is
    left to the caller, and the spec takes its encoded matrix.
    """
    check_arguments(tm, n_features, input_transform, output_transform, task, classes, what)
    enc = tm.encoder
    if not numeric_only(enc):
        spec = network_spec(tm, what)
        kinds = sorted({c.kind for c in enc.columns_} - {"numeric", "boolean"})
        spec.input_note = (
            "x: the encoded matrix of TableEncoder.transform, not raw columns: the run has "
            f"{' and '.join(kinds)} columns, which gradstep (or the ONNX export) encodes"
        )
        return spec
    k = len(enc.num_indicator_)
    transform = {
        "fill": enc.num_fill_,
        "indicator_columns": list(enc.num_indicator_),
        "mean": np.concatenate([enc.mean_, np.zeros(k)]),
        "scale": np.concatenate([enc.scale_, np.ones(k)]),
    }
    spec = prepare(
        tm.model,
        n_features=len(enc.columns_),
        input_transform=transform,
        what=what,
        **_target(tm),
    )
    spec.feature_names = list(enc.used)
    spec.input_note = "x: the raw columns FEATURES, in order (NaN = missing, booleans as 0/1)"
    return spec
