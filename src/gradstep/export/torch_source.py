"""The Python module that ``to_torch`` writes beside the weights: plain PyTorch, no gradstep.

Its ``build()`` returns the network as a ``torch.nn.Sequential`` (one module per gradstep
layer, so the state_dict keys are gradstep's ``0.weight``, ``0.bias``, ...), or, when there are
transforms, a ``Model`` holding ``preprocess``, ``net`` and ``postprocess`` (keys
``preprocess.mean``, ``net.0.weight``, ``postprocess.scale``, ...). The transforms are buffers,
so the numbers live in the weights file and the code holds only the structure.
"""

from __future__ import annotations

from gradstep.export.spec import ExportSpec

_TORCH_LAYERS = {
    "relu": "nn.ReLU()",
    "sigmoid": "nn.Sigmoid()",
    "tanh": "nn.Tanh()",
    "softplus": "nn.Softplus()",
    "identity": "nn.Identity()",
    "flatten": "nn.Flatten()",
}

_HEADER = '''"""A gradstep {task} model rebuilt in PyTorch (written by gradstep.export.to_torch).

    model = load()  # the weights written beside this file ({weights})
    y = model(torch.as_tensor(x, dtype=torch.float32))  # x of shape (N, {n_features})
{note}
{returns}
"""

import os

import torch
from torch import nn

WEIGHTS = {weights!r}
N_FEATURES = {n_features}
TASK = {task!r}
'''

_LOAD = '''

def build():
    """The model's structure with placeholder numbers, in eval mode (Dropout off)."""
    return {root}().eval()


def load(path=None):
    """``build()`` with the weights at ``path`` (default: WEIGHTS, beside this file)."""
    if path is None:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), WEIGHTS)
    model = build()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model
'''

_CLASSIFY = '''

def predict_proba(model, x):
    """Class probabilities of shape (N, len(CLASSES)): the softmax of the logits."""
    with torch.no_grad():
        return torch.softmax(model(torch.as_tensor(x, dtype=torch.float32)), dim=1)


def predict(model, x):
    """The label of the largest logit for each row, as a list."""
    with torch.no_grad():
        logits = model(torch.as_tensor(x, dtype=torch.float32))
    return [CLASSES[i] for i in logits.argmax(dim=1).tolist()]
'''


def _shape(value) -> str:
    return repr(tuple(value.shape))


def _layer(ly) -> str:
    if ly.kind == "linear":
        out_f, in_f = ly.weight.shape
        return f"nn.Linear({in_f}, {out_f}" + (", bias=False)" if ly.bias is None else ")")
    if ly.kind == "leaky_relu":
        return f"nn.LeakyReLU(negative_slope={ly.slope!r})"
    if ly.kind == "dropout":
        return f"nn.Dropout(p={ly.p!r})"
    return _TORCH_LAYERS[ly.kind]


def _network(spec: ExportSpec) -> list[str]:
    lines = ["", "", "def network():", '    """The gradstep layers, one module each."""']
    lines.append("    return nn.Sequential(")
    lines += [f"        {_layer(ly)},  # gradstep layer {ly.name}" for ly in spec.layers]
    return lines + ["    )"]


def _buffers(names_values) -> list[str]:
    lines = ["    def __init__(self):", "        super().__init__()"]
    for name, value in names_values:
        if value is not None:
            lines.append(
                f'        self.register_buffer("{name}", torch.zeros({_shape(value)}, '
                "dtype=torch.float64))"
            )
    return lines


def _preprocess(spec: ExportSpec) -> list[str]:
    lines = ["", "", "class Preprocess(nn.Module):"]
    lines.append('    """NaN -> fill, missing-value indicators, (x - mean) / scale, in float64."""')
    lines += ["", *_buffers([("fill", spec.fill), ("mean", spec.mean), ("scale", spec.scale)])]
    lines += ["", "    def forward(self, x):", "        x = x.to(torch.float64)"]
    if spec.fill is not None or spec.indicator_columns:
        lines.append("        missing = torch.isnan(x)")
    if spec.fill is not None:
        lines.append("        x = torch.where(missing, self.fill, x)")
    if spec.indicator_columns:
        lines.append("        flags = missing[:, INDICATOR_COLUMNS].to(torch.float64)")
        lines.append("        x = torch.cat([x, flags], dim=1)")
    if spec.mean is not None:
        lines.append("        x = x - self.mean")
    if spec.scale is not None:
        lines.append("        x = x / self.scale")
    return lines + ["        return x.to(torch.float32)"]


def _postprocess(spec: ExportSpec) -> list[str]:
    lines = ["", "", "class Postprocess(nn.Module):"]
    lines.append('    """The target back in its own units: y * scale + mean, in float64."""')
    lines += ["", *_buffers([("mean", spec.out_mean), ("scale", spec.out_scale)])]
    lines += ["", "    def forward(self, y):", "        y = y.to(torch.float64)"]
    if spec.out_scale is not None:
        lines.append("        y = y * self.scale")
    if spec.out_mean is not None:
        lines.append("        y = y + self.mean")
    return lines + ["        return y.to(torch.float32)"]


def _wrapper(spec: ExportSpec) -> list[str]:
    parts = (["preprocess"] if spec.has_preprocess else []) + ["net"]
    parts += ["postprocess"] if spec.has_postprocess else []
    lines = ["", "", "class Model(nn.Module):", '    """' + " -> ".join(parts) + '."""', ""]
    lines += ["    def __init__(self):", "        super().__init__()"]
    for part in parts:
        cls = "network" if part == "net" else part.capitalize()
        lines.append(f"        self.{part} = {cls}()")
    lines += ["", "    def forward(self, x):"]
    call = "x"
    for part in parts:
        call = f"self.{part}({call})"
    return lines + [f"        return {call}"]


def module_source(spec: ExportSpec, weights: str) -> str:
    """The text of the generated module; ``weights`` is the weights file relative to it."""
    if spec.task == "classification":
        returns = "Returns logits of shape (N, len(CLASSES)); predict_proba and predict help."
    else:
        returns = f"Returns predictions of shape (N, {spec.n_outputs})."
    note = f"\n{spec.input_note}\n" if spec.input_note else ""
    text = _HEADER.format(
        task=spec.task, weights=weights, n_features=spec.n_features, returns=returns, note=note
    )
    if spec.feature_names:
        text += f"FEATURES = {spec.feature_names!r}\n"
    if spec.task == "classification":
        text += f"CLASSES = {spec.classes!r}\n"
    if spec.indicator_columns:
        text += f"INDICATOR_COLUMNS = {spec.indicator_columns!r}\n"
    lines = _network(spec)
    wrapped = spec.has_preprocess or spec.has_postprocess
    if spec.has_preprocess:
        lines += _preprocess(spec)
    if spec.has_postprocess:
        lines += _postprocess(spec)
    if wrapped:
        lines += _wrapper(spec)
    text += "\n".join(lines) + "\n" + _LOAD.format(root="Model" if wrapped else "network")
    return text + (_CLASSIFY if spec.task == "classification" else "")
