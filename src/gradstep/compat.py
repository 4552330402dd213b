"""PyTorch's top-level names that mean something on a NumPy CPU engine, so homework code moves
over with its import line changed: dtype constants, ``Generator``, ``device``, ``cuda`` and
``backends`` (CPU only), ``from_numpy``, ``FloatTensor`` and friends.

Where a name can only be a no-op here (``torch.backends.cudnn.deterministic = True``), it is
one, and says so; nothing pretends to run on a GPU: ``cuda.is_available()`` is False and
``.cuda()`` / ``device("cuda")`` raise.
"""

from __future__ import annotations

import builtins
import types

import numpy as np

# dtypes: NumPy's own, under PyTorch's names (t.dtype == gs.float32 works both ways)
float16 = half = np.dtype(np.float16)
float32 = float = np.dtype(np.float32)  # noqa: A001 - PyTorch's name
float64 = double = np.dtype(np.float64)
int8 = np.dtype(np.int8)
uint8 = np.dtype(np.uint8)
int16 = short = np.dtype(np.int16)
int32 = int = np.dtype(np.int32)  # noqa: A001
int64 = long = np.dtype(np.int64)
bool = np.dtype(np.bool_)  # noqa: A001

DTYPES = [
    "float16", "half", "float32", "float", "float64", "double", "int8", "uint8", "int16",
    "short", "int32", "int", "int64", "long", "bool",
]  # fmt: skip


class Generator:
    """PyTorch's ``torch.Generator()``: ``Generator().manual_seed(42)`` gives a seeded source
    of randomness for ``random_split``, ``DataLoader(shuffle=True)``, ``gs.randn`` ... It is a
    NumPy ``Generator`` inside (its methods, ``permutation``, ``integers``, ..., are there)."""

    def __init__(self, device="cpu"):
        device_type(device)
        self._rng = np.random.default_rng()
        self._seed = None

    def manual_seed(self, seed) -> Generator:
        self._seed = builtins.int(seed)
        self._rng = np.random.default_rng(self._seed)
        return self

    def initial_seed(self):
        return self._seed

    def __getattr__(self, name):
        return getattr(self.__dict__["_rng"], name)


def device_type(d) -> str:
    """'cpu' for any spelling of the CPU; a clear error for anything else."""
    name = str(getattr(d, "type", d) or "cpu")
    if name != "cpu" and not name.startswith("cpu:"):
        raise ValueError(
            f"device {name!r}: gradstep runs on the CPU (NumPy); use 'cpu' "
            "(device = 'cuda' if gs.cuda.is_available() else 'cpu' picks it)"
        )
    return "cpu"


class device:
    """``torch.device('cpu')``: the one device here."""

    def __init__(self, type="cpu", index=None):  # noqa: A002
        self.type = device_type(type)
        self.index = index

    def __repr__(self) -> str:
        return "device(type='cpu')"

    def __str__(self) -> str:
        return "cpu"

    def __eq__(self, other) -> bool:
        return str(other) == "cpu"

    def __hash__(self) -> int:
        return hash("cpu")


cuda = types.SimpleNamespace(
    is_available=lambda: False,
    device_count=lambda: 0,
    manual_seed=lambda seed: None,
    manual_seed_all=lambda seed: None,
)
cuda.__doc__ = "No CUDA here: is_available() is False, seeding it does nothing."

#: ``torch.backends.cudnn.deterministic = True`` / ``.benchmark = False``: accepted and without
#: effect (NumPy on the CPU is deterministic already).
backends = types.SimpleNamespace(
    cudnn=types.SimpleNamespace(deterministic=False, benchmark=False, enabled=False),
    mps=types.SimpleNamespace(is_available=lambda: False),
)
