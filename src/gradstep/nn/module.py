"""Module and Parameter: the "function with unknown parameters" of the lecture's step 1."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

import numpy as np

from gradstep import autograd
from gradstep.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module registers as one of its unknown parameters (requires_grad=True)."""

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True, dtype=None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer and model.

    Assigning a :class:`Parameter` or a Module as an attribute registers it, so
    ``parameters()``, ``state_dict()`` and ``zero_grad()`` find it; keys are dotted paths as in
    PyTorch (``"0.weight"``). Subclasses call ``super().__init__()`` first and define
    ``forward``; calling the module calls ``forward`` (arrays are turned into Tensors first).
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__}: call super().__init__() before assigning attributes"
            )
        was_buffer = name in self._buffers
        target = None
        if isinstance(value, Parameter):
            target = self._parameters
        elif isinstance(value, Module):
            target = self._modules
        elif was_buffer and value is not None:  # self.running_mean = new: still a buffer
            target = self._buffers
        for registry in (self._parameters, self._modules, self._buffers):
            if registry is not target:
                registry.pop(name, None)
        if target is not None:  # a replaced child keeps its place (Sequential's order), as PyTorch
            target[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, value: np.ndarray) -> None:
        """A named array saved in ``state_dict`` but not trained (e.g. normalisation stats)."""
        self.__setattr__(name, value)
        self._buffers[name] = value

    def forward(self, *args, **kwargs):
        """What calling the module computes; every layer and model defines it."""
        raise TypeError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        """``forward`` with any positional and keyword arguments; a first argument that is an
        array (not a Tensor) becomes a Tensor of the parameters' dtype."""
        tracer = autograd._tracer  # read once: another thread's trace may end
        if tracer is not None:  # a compiled step depends on train()/eval()
            tracer.record_module(self)
        if args and not isinstance(args[0], Tensor) and isinstance(args[0], (np.ndarray, list)):
            args = (Tensor(args[0], dtype=self._input_dtype(args[0])), *args[1:])
        return self.forward(*args, **kwargs)

    def _input_dtype(self, x):
        """Floating arrays take the dtype of this module's parameters (a float64 model gets
        float64 input, not the default float32); other data keeps its own."""
        if np.asarray(x).dtype.kind not in "fiub":
            return None
        p = next(self.parameters(), None)
        return p.dtype if p is not None and np.asarray(x).dtype.kind == "f" else None

    # --- traversal ---------------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        seen = set()
        for prefix, m in self.named_modules():
            for name, p in m._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{prefix}.{name}" if prefix else name), p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    # --- modes and gradients -----------------------------------------------------------------
    def apply(self, fn) -> Module:
        """Call ``fn`` on every submodule, then on this one (as PyTorch: for custom init)."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def to(self, *args, **kwargs) -> Module:
        """``to(dtype)`` converts every parameter and floating buffer in place; ``to("cpu")``
        is the one device here."""
        from gradstep.compat import device, device_type

        dtype = kwargs.pop("dtype", None)
        if kwargs.get("device") is not None:
            device_type(kwargs["device"])
        for a in args:
            if isinstance(a, (str, device)):
                device_type(a)
            else:
                dtype = a
        if dtype is None:
            return self
        dtype = np.dtype(dtype)
        for m in self.modules():
            for p in m._parameters.values():
                p.data = p.data.astype(dtype)
                p._grad = None
            for name, b in list(m._buffers.items()):
                if isinstance(b, np.ndarray) and b.dtype.kind == "f":
                    setattr(m, name, b.astype(dtype))
        return self

    def double(self) -> Module:
        return self.to(np.float64)

    def float(self) -> Module:
        return self.to(np.float32)

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none or p._grad is None:
                p.grad = None
            else:
                p._grad.fill(0)

    # --- state -------------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict:
        """Parameters and buffers as NumPy arrays under dotted keys.

        Unlike PyTorch the arrays are copies: a state_dict taken as "the best weights so far"
        stays the best weights while training goes on.
        """
        out = OrderedDict()
        for prefix, m in self.named_modules():
            for name, p in m._parameters.items():
                out[f"{prefix}.{name}" if prefix else name] = p.data.copy()
            for name in m._buffers:
                value = getattr(m, name)
                out[f"{prefix}.{name}" if prefix else name] = np.array(value, copy=True)
        return out

    def load_state_dict(self, state: dict, strict: bool = True) -> dict:
        """Copy ``state``'s arrays into this module's parameters and buffers, in place.

        With ``strict`` every key must match: missing keys, unexpected keys and shape
        mismatches are all reported by name in one error. Returns the missing and unexpected
        keys (both empty when strict).
        """
        targets = {}
        for prefix, m in self.named_modules():
            for name in list(m._parameters) + list(m._buffers):
                targets[f"{prefix}.{name}" if prefix else name] = (m, name)
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        problems = []
        for key, (m, name) in targets.items():
            if key not in state:
                continue
            value = np.asarray(state[key])
            current = getattr(m, name)
            shape = current.shape if hasattr(current, "shape") else np.shape(current)
            if value.shape != shape:
                problems.append(f"{key}: shape {value.shape} in the state, {shape} in the model")
        if strict and (missing or unexpected):
            problems.insert(0, f"missing keys {missing}, unexpected keys {unexpected}")
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__}: " + "; ".join(problems))
        for key, (m, name) in targets.items():
            if key in state:
                current = getattr(m, name)
                if isinstance(current, Tensor):
                    current.data[...] = np.asarray(state[key], dtype=current.dtype)
                else:
                    current[...] = np.asarray(state[key])
        return {"missing_keys": missing, "unexpected_keys": unexpected}

    # --- printing ------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        if self._modules:
            for name, child in self._modules.items():
                body = repr(child).replace("\n", "\n  ")
                lines.append(f"  ({name}): {body}")
            return "\n".join(lines) + "\n)"
        return lines[0] + ")"
