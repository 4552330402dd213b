"""Model export: a trained gradstep MLP as an ONNX graph or as plain PyTorch.

>>> from gradstep import nn
>>> from gradstep.export import to_onnx, to_torch
>>> model = nn.mlp(4, [16], 1)
>>> to_onnx(model, "model.onnx")  # doctest: +SKIP
'model.onnx'

Both take a gradstep ``nn.Sequential`` (or a fitted ``MLPRegressor`` / ``MLPClassifier``) and
the same optional transforms; see ``docs/export.md``. ``onnx`` and ``torch`` are imported only
when a model is exported.
"""

from gradstep.export.onnx import to_onnx
from gradstep.export.torch import to_torch

__all__ = ["to_onnx", "to_torch"]
