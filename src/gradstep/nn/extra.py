"""Embedding and LayerNorm, PyTorch's names, arguments and state_dict keys; built from the
engine's ops (indexing, mean, sqrt), so their gradients are those ops' and a compiled step
replays them."""

from __future__ import annotations

import numpy as np

from gradstep.backend import get_default_dtype
from gradstep.nn.module import Module, Parameter
from gradstep.ops.normalization import BatchNorm
from gradstep.random import default_generator
from gradstep.tensor import Tensor


class Embedding(Module):
    """A learned vector per index: ``weight[idx]``, of shape idx.shape + (embedding_dim,). The
    way to feed a categorical column (as integer codes) to a network. Repeated indices add
    their gradients; ``padding_idx``'s row starts at zero and gets no gradient."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx=None, dtype=None):
        super().__init__()
        for name, v in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"Embedding: {name} must be a positive integer, got {v!r}")
        if padding_idx is not None:
            padding_idx = int(padding_idx) % num_embeddings
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.padding_idx = padding_idx
        w = default_generator().standard_normal((num_embeddings, embedding_dim))
        if padding_idx is not None:
            w[padding_idx] = 0
        dt = dtype or get_default_dtype()
        self.weight = Parameter(w.astype(dt), dtype=dt)

    def forward(self, idx) -> Tensor:
        raw = np.asarray(idx.data if isinstance(idx, Tensor) else idx)
        if raw.dtype.kind not in "iu":
            raise TypeError(f"Embedding: indices must be integers, got dtype {raw.dtype}")
        if raw.size and (raw.min() < 0 or raw.max() >= self.num_embeddings):
            bad = raw[(raw < 0) | (raw >= self.num_embeddings)].flat[0]
            raise IndexError(f"Embedding: index {bad} is outside [0, {self.num_embeddings})")
        out = self.weight[raw]
        if self.padding_idx is not None and (raw == self.padding_idx).any():
            keep = (raw != self.padding_idx)[..., None].astype(self.weight.dtype)
            out = out * keep  # zero gradient into the padding row
        return out

    def __call__(self, *args, **kwargs):  # integer indices are not converted to floats
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


class LayerNorm(Module):
    """(x - mean) / sqrt(var + eps) over the last ``len(normalized_shape)`` axes (the biased
    variance), then ``* weight + bias`` when ``elementwise_affine``."""

    def __init__(
        self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, dtype=None
    ):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
        self.normalized_shape, self.eps = tuple(int(s) for s in shape), float(eps)
        self.elementwise_affine = elementwise_affine
        dt = dtype or get_default_dtype()
        if elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dt), dtype=dt)
            self.bias = Parameter(np.zeros(self.normalized_shape, dt), dtype=dt)

    def forward(self, x: Tensor) -> Tensor:
        k = len(self.normalized_shape)
        if x.shape[-k:] != self.normalized_shape:
            raise ValueError(
                f"LayerNorm: input of shape {x.shape} does not end in {self.normalized_shape}"
            )
        axes = tuple(range(x.ndim - k, x.ndim))
        centred = x - x.mean(axes, keepdim=True)
        var = (centred * centred).mean(axes, keepdim=True)
        out = centred / (var + np.asarray(self.eps, dtype=x.dtype)).sqrt()
        return out * self.weight + self.bias if self.elementwise_affine else out

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )


class BatchNorm1d(Module):
    """PyTorch's BatchNorm1d over (N, C) or (N, C, L) input: in training, each channel is
    normalised by this batch's mean and (biased) variance, and the running statistics move
    towards them (``momentum``; None: the cumulative average); in eval(), the running
    statistics are used. State_dict keys are PyTorch's: weight, bias, running_mean,
    running_var, num_batches_tracked, so a torch state_dict loads as it is."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype=None,
    ):
        super().__init__()
        if not isinstance(num_features, (int, np.integer)) or num_features <= 0:
            raise ValueError(
                f"BatchNorm1d: num_features must be a positive integer, got {num_features!r}"
            )
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        dt = dtype or get_default_dtype()
        if affine:
            self.weight = Parameter(np.ones(num_features, dt), dtype=dt)
            self.bias = Parameter(np.zeros(num_features, dt), dtype=dt)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, dt), dtype=dt))
            self.register_buffer("running_var", Tensor(np.ones(num_features, dt), dtype=dt))
            self.register_buffer("num_batches_tracked", Tensor(np.zeros((), np.int64)))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in (2, 3) or x.shape[1] != self.num_features:
            raise ValueError(
                f"BatchNorm1d({self.num_features}): expected input of shape (N, "
                f"{self.num_features}) or (N, {self.num_features}, L), got {x.shape}"
            )
        weight, bias = (self.weight, self.bias) if self.affine else (None, None)
        axes = (0,) if x.ndim == 2 else (0, 2)
        if self.training or not self.track_running_stats:
            track = self.training and self.track_running_stats
            return BatchNorm.apply(
                x,
                weight,
                bias,
                axes=axes,
                eps=self.eps,
                stats=self if track else None,
                momentum=self.momentum,
            )
        # eval: ops on the buffers (not their arrays), so a compiled step reads them anew
        shape = (1, -1) if x.ndim == 2 else (1, -1, 1)
        eps = np.asarray(self.eps, dtype=self.running_var.dtype)
        scale = (self.running_var + eps).rsqrt().reshape(shape)
        out = (x - self.running_mean.reshape(shape)) * scale
        if self.affine:
            out = out * self.weight.reshape(shape) + self.bias.reshape(shape)
        return out

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )
