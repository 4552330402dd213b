"""Datasets and the DataLoader that cuts them into mini-batches (one *update* per batch)."""

from __future__ import annotations

import abc
import math

import numpy as np

from gradstep.operands import _to_array
from gradstep.random import default_generator
from gradstep.tensor import Tensor


class Dataset(abc.ABC):
    """A map-style dataset: ``len(ds)`` examples, ``ds[i]`` a tuple of arrays."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """The number of examples."""

    @abc.abstractmethod
    def __getitem__(self, i):
        """Example ``i`` as a tuple of arrays (or one array)."""

    def take(self, indices: np.ndarray) -> tuple:
        """The examples at ``indices`` as stacked arrays (subclasses may do it faster)."""
        items = [self[int(i)] for i in indices]
        if not isinstance(items[0], tuple):
            return (np.stack(items),)
        return tuple(np.stack(col) for col in zip(*items))


class TensorDataset(Dataset):
    """Examples are rows of the given arrays, which must share their first dimension.

    Floating arrays become the default dtype (float32) once, here, not per batch.
    """

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("TensorDataset needs at least one array")
        self.arrays = tuple(_to_array(a) for a in arrays)
        n = {a.shape[0] if a.ndim else None for a in self.arrays}
        if len(n) != 1 or None in n:
            shapes = [a.shape for a in self.arrays]
            raise ValueError(f"TensorDataset: arrays differ in their first dimension: {shapes}")

    def __len__(self) -> int:
        return self.arrays[0].shape[0]

    def __getitem__(self, i):
        return tuple(a[i] for a in self.arrays)

    def take(self, indices) -> tuple:
        return tuple(a[indices] for a in self.arrays)


class Subset(Dataset):
    def __init__(self, dataset: Dataset, indices):
        self.dataset, self.indices = dataset, np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        return self.dataset[int(self.indices[i])]

    def take(self, indices) -> tuple:
        return self.dataset.take(self.indices[indices])


def random_split(dataset: Dataset, lengths, generator: np.random.Generator | None = None):
    """Split into non-overlapping Subsets of the given lengths (or fractions summing to 1)."""
    n = len(dataset)
    lengths = list(lengths)
    if all(0 <= f <= 1 for f in lengths) and math.isclose(sum(lengths), 1.0) and sum(lengths) != n:
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if sum(lengths) != n:
        raise ValueError(f"random_split: lengths {lengths} do not add up to {n} examples")
    perm = (generator or default_generator()).permutation(n)
    out, start = [], 0
    for k in lengths:
        out.append(Subset(dataset, perm[start : start + k]))
        start += k
    return out


class DataLoader:
    """Mini-batches of a dataset, as Tensors.

    Parameters
    ----------
    dataset : Dataset (or a tuple of arrays, wrapped in a TensorDataset)
    batch_size : int
    shuffle : bool
        A new permutation every epoch, drawn from ``generator`` (or gradstep's global one,
        seeded by ``gradstep.manual_seed``), so runs are reproducible.
    drop_last : bool
        Drop the last batch if it is smaller than ``batch_size``.
    generator : numpy.random.Generator, optional
    """

    def __init__(
        self,
        dataset,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        generator: np.random.Generator | None = None,
    ):
        if isinstance(dataset, tuple):
            dataset = TensorDataset(*dataset)
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.shuffle, self.drop_last, self.generator = shuffle, drop_last, generator

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def order(self) -> np.ndarray:
        """This epoch's order of examples (draws from the generator when shuffling)."""
        n = len(self.dataset)
        if self.shuffle:
            return (self.generator or default_generator()).permutation(n)
        return np.arange(n)

    def batches(self, order: np.ndarray, start: int = 0):
        """The batches of ``order`` from batch number ``start`` on (for exact resume)."""
        bs = self.batch_size
        for b in range(start, len(self)):
            idx = order[b * bs : (b + 1) * bs]
            yield tuple(Tensor._make(a, False, None) for a in self.dataset.take(idx))

    def __iter__(self):
        return self.batches(self.order())
