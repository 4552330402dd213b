"""ModuleList and ModuleDict: PyTorch's containers that register their modules (so their
parameters, state_dict keys "0.weight" / "name.weight" and train()/eval() reach them) without
defining a forward of their own."""

from __future__ import annotations

from collections import OrderedDict

from gradstep.nn.module import Module


def _check(name, m) -> Module:
    if not isinstance(m, Module):
        raise TypeError(f"item {name!r} is a {type(m).__name__}, not a Module")
    return m


class ModuleList(Module):
    """A list of modules, indexed like a list; children are named "0", "1", ..."""

    def __init__(self, modules=None):
        super().__init__()
        for m in modules or ():
            self.append(m)

    def append(self, module: Module) -> ModuleList:
        setattr(self, str(len(self)), _check(len(self), module))
        return self

    def extend(self, modules) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def __getitem__(self, i):
        items = list(self._modules.values())
        return ModuleList(items[i]) if isinstance(i, slice) else items[i]

    def __setitem__(self, i: int, module: Module) -> None:
        key = list(self._modules)[i]
        self._modules[key] = _check(key, module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class ModuleDict(Module):
    """A dict of modules by name (keys become state_dict prefixes)."""

    def __init__(self, modules=None):
        super().__init__()
        for k, m in (modules or {}).items():
            self[k] = m

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(key, str) or not key or "." in key:
            raise KeyError(f"ModuleDict keys are non-empty strings without '.', got {key!r}")
        setattr(self, key, _check(key, module))

    def __contains__(self, key) -> bool:
        return key in self._modules

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def update(self, modules) -> None:
        for k, m in OrderedDict(modules).items():
            self[k] = m
