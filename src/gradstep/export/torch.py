"""``to_torch``: a gradstep MLP as a PyTorch ``state_dict`` file plus the module that reads it.

``torch_files`` gives the same two as bytes and text, for a caller that writes files itself.

``torch`` is imported here only, when a model is exported.
"""

from __future__ import annotations

import contextlib
import io
import os

from gradstep.export.spec import ExportSpec, check_destination, prepare
from gradstep.export.torch_source import module_source


def state_dict(spec: ExportSpec) -> dict:
    """The numbers of ``spec`` as NumPy arrays, under the keys the generated module expects."""
    wrapped = spec.has_preprocess or spec.has_postprocess
    net = "net." if wrapped else ""
    state = {}
    for i, ly in enumerate(spec.layers):
        if ly.kind == "linear":
            state[f"{net}{i}.weight"] = ly.weight
            if ly.bias is not None:
                state[f"{net}{i}.bias"] = ly.bias
    for prefix, names in (
        ("preprocess", (("fill", spec.fill), ("mean", spec.mean), ("scale", spec.scale))),
        ("postprocess", (("mean", spec.out_mean), ("scale", spec.out_scale))),
    ):
        state.update({f"{prefix}.{k}": v for k, v in names if v is not None})
    return state


def _paths(path, module_path) -> tuple[str, str]:
    path = check_destination(path, "to_torch")
    if module_path is None:
        module_path = os.path.splitext(path)[0] + ".py"
    module_path = check_destination(module_path, "to_torch")
    if os.path.abspath(module_path) == os.path.abspath(path):
        raise ValueError(
            f"to_torch: the weights and the module would both be {path}; give the weights "
            "another suffix (model.pt) or pass module_path="
        )
    return path, module_path


def _relative(path: str, module_path: str) -> str:
    """Where the weights are, seen from the module's folder (absolute if no relative path)."""
    try:
        return os.path.relpath(os.path.abspath(path), os.path.dirname(os.path.abspath(module_path)))
    except ValueError:  # another drive on Windows
        return os.path.abspath(path)


def _checked_bytes(spec: ExportSpec, source: str) -> bytes:
    """The weights file's bytes, after loading them into the generated module (strict)."""
    import torch

    tensors = {k: torch.from_numpy(v.copy()) for k, v in state_dict(spec).items()}
    namespace: dict = {"__name__": "gradstep_export_check", "__file__": "<to_torch>"}
    exec(compile(source, "<to_torch>", "exec"), namespace)  # our own generated text
    namespace["build"]().load_state_dict(tensors, strict=True)
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    return buffer.getvalue()


def _files(model, weights_name: str, what: str, **options) -> tuple[bytes, str]:
    if not isinstance(weights_name, str) or not weights_name.strip():
        raise ValueError(
            f"{what}: weights_name must be a non-empty file name, got {weights_name!r}"
        )
    spec = prepare(model, what=what, **options)
    source = module_source(spec, weights_name)
    return _checked_bytes(spec, source), source


def torch_files(
    model,
    *,
    weights_name: str = "model.pt",
    n_features: int | None = None,
    input_transform: dict | None = None,
    output_transform: dict | None = None,
    task: str | None = None,
    classes=None,
    _what: str = "torch_files",
) -> tuple[bytes, str]:
    """The weights file's bytes and the module's text, for a caller that writes files itself.

    Parameters
    ----------
    model, n_features, input_transform, output_transform, task, classes
        As for :func:`to_torch`.
    weights_name : str
        Where the module looks for the weights by default, relative to the module's folder
        (or absolute).

    Returns
    -------
    (bytes, str)
        ``torch.save`` of the state_dict, already loaded into the module with ``strict=True``,
        and the module's source.
    """
    options = dict(
        n_features=n_features,
        input_transform=input_transform,
        output_transform=output_transform,
        task=task,
        classes=classes,
    )
    return _files(model, weights_name, _what, **options)


def to_torch(
    model,
    path,
    *,
    module_path=None,
    n_features: int | None = None,
    input_transform: dict | None = None,
    output_transform: dict | None = None,
    task: str | None = None,
    classes=None,
) -> tuple[str, str]:
    """Write ``model`` as a PyTorch state_dict at ``path`` and its module beside it.

    Parameters
    ----------
    model, n_features, input_transform, output_transform, task, classes
        As for :func:`gradstep.export.to_onnx`. A ``TabularModel`` exports its network and
        target scaling; when every column it uses is numeric or boolean also its imputation,
        indicators and standardisation (the module then takes the raw columns ``FEATURES``),
        otherwise the module takes the encoded matrix (``TableEncoder.transform``).
    path : str or os.PathLike
        The weights file (``torch.save`` of a dict of tensors; read it with
        ``torch.load(path, weights_only=True)``).
    module_path : str or os.PathLike, optional
        The generated Python module; default ``path`` with the suffix ``.py``. It defines
        ``build()`` (the model with placeholder numbers, in eval mode) and ``load(path=None)``,
        and, for a classifier, ``CLASSES``, ``predict_proba(model, x)`` and ``predict(model, x)``.

    Returns
    -------
    (str, str)
        The weights path and the module path. Both files are written atomically; if the
        module cannot be written, a weights file this call created is removed again.
    """
    from gradstep.io import atomic_write_bytes

    path, module_path = _paths(path, module_path)
    blob, source = torch_files(
        model,
        weights_name=_relative(path, module_path),
        n_features=n_features,
        input_transform=input_transform,
        output_transform=output_transform,
        task=task,
        classes=classes,
        _what="to_torch",
    )
    existed = os.path.exists(path)
    atomic_write_bytes(path, blob)
    try:
        atomic_write_bytes(module_path, source.encode("utf-8"))
    except BaseException:
        if not existed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        raise
    return path, module_path
