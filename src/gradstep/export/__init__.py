"""Model export: a trained gradstep MLP as an ONNX graph or as plain PyTorch.

>>> from gradstep import nn
>>> from gradstep.export import to_onnx, to_torch
>>> model = nn.mlp(4, [16], 1)
>>> to_onnx(model, "model.onnx")  # doctest: +SKIP
'model.onnx'

Both take a gradstep ``nn.Sequential`` (or a fitted ``MLPRegressor`` / ``MLPClassifier``, or a
``TabularModel`` from ``gradstep train``, whose ONNX graph takes the raw table columns) and the
same optional transforms; see ``docs/export.md``. ``onnx_bytes`` and ``torch_files`` return
what the two would write, for a caller that writes files itself. ``onnx`` and ``torch`` are
imported only when a model is exported.
"""

from gradstep.export.onnx import onnx_bytes, to_onnx
from gradstep.export.torch import to_torch, torch_files

__all__ = ["onnx_bytes", "to_onnx", "to_torch", "torch_files"]
