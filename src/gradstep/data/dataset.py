"""Datasets and the DataLoader that cuts them into mini-batches (one *update* per batch)."""

from __future__ import annotations

import abc
import math

import numpy as np

from gradstep.operands import _to_array
from gradstep.random import default_generator
from gradstep.tensor import Tensor


class Dataset(abc.ABC):
    """A map-style dataset: ``len(ds)`` examples, ``ds[i]`` one example: a tuple of arrays (or
    Tensors or numbers), a dict of them, or a single one; see :func:`collate`."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """The number of examples."""

    @abc.abstractmethod
    def __getitem__(self, i):
        """Example ``i`` as a tuple of arrays (or one array)."""

    def take(self, indices: np.ndarray):
        """The examples at ``indices`` collated into a batch (subclasses may do it faster)."""
        return collate([self[int(i)] for i in indices])


def collate(items: list):
    """A batch from a list of examples, as PyTorch's default collate makes it: a tuple (or
    list) of fields gives a tuple of stacked fields, a dict a dict, one array (or Tensor or
    number) one stacked array; strings stay a list. Floating data gets the default dtype, as
    ``gs.tensor`` gives it; a Tensor keeps its own."""
    first = items[0]
    if isinstance(first, (tuple, list)):
        return tuple(collate(list(col)) for col in zip(*items))
    if isinstance(first, dict):
        return {k: collate([it[k] for it in items]) for k in first}
    if isinstance(first, (str, bytes)):
        return list(items)
    if isinstance(first, Tensor):
        return np.stack([t.data if isinstance(t, Tensor) else t for t in items])
    return _to_array(np.stack(items))


def _tensors(batch):
    """Arrays inside a collated batch as Tensors (the structure kept)."""
    if isinstance(batch, np.ndarray):
        return Tensor._make(batch, False, None)
    if isinstance(batch, tuple):
        return tuple(_tensors(b) for b in batch)
    if isinstance(batch, dict):
        return {k: _tensors(v) for k, v in batch.items()}
    return batch


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
    generator : numpy.random.Generator or gradstep.Generator, optional
    collate_fn : callable, optional
        Turns a list of examples into a batch (default :func:`collate`); arrays in what it
        returns become Tensors.
    num_workers, pin_memory
        Taken for PyTorch code and ignored: batches are made in this process.
    """

    def __init__(
        self,
        dataset,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        generator: np.random.Generator | None = None,
        collate_fn=None,
        num_workers: int = 0,
        pin_memory: bool = False,
        **ignored,
    ):
        # num_workers / pin_memory / persistent_workers ...: PyTorch's knobs for worker
        # processes and GPU transfer. Batches here are slices of arrays already in memory, made
        # in this process (the same batches, in the same order, for any num_workers).
        unknown = set(ignored) - {
            "persistent_workers",
            "prefetch_factor",
            "worker_init_fn",
            "timeout",
            "multiprocessing_context",
            "pin_memory_device",
        }
        if unknown:
            raise TypeError(f"DataLoader got unexpected keyword arguments {sorted(unknown)}")
        if not isinstance(num_workers, (int, np.integer)) or num_workers < 0:
            raise ValueError(f"num_workers must be a non-negative integer, got {num_workers!r}")
        if isinstance(dataset, tuple):
            dataset = TensorDataset(*dataset)
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.shuffle, self.drop_last, self.generator = shuffle, drop_last, generator
        self.collate_fn = collate_fn

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
            if self.collate_fn is None:
                batch = self.dataset.take(idx)
            else:
                batch = self.collate_fn([self.dataset[int(i)] for i in idx])
            if type(batch) is tuple and all(type(a) is np.ndarray for a in batch):  # fast
                yield tuple(Tensor._make(a, False, None) for a in batch)
            else:
                yield _tensors(batch)

    def __iter__(self):
        return self.batches(self.order())
