"""Getting data in: datasets, mini-batches, splits, scaling, time-series windows."""

from gradstep.data.dataset import DataLoader, Dataset, Subset, TensorDataset, random_split
from gradstep.data.preprocessing import StandardScaler, sliding_windows

__all__ = [
    "DataLoader",
    "Dataset",
    "StandardScaler",
    "Subset",
    "TensorDataset",
    "random_split",
    "sliding_windows",
]
