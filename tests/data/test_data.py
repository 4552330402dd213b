from __future__ import annotations

import numpy as np
import pytest

import gradstep as gs
from gradstep.data import (
    DataLoader,
    StandardScaler,
    TensorDataset,
    random_split,
    sliding_windows,
)


def test_loader_batches_cover_the_data_once_and_drop_last():
    ds = TensorDataset(np.arange(10.0).reshape(10, 1), np.arange(10))
    dl = DataLoader(ds, batch_size=4, shuffle=True, generator=np.random.default_rng(0))
    seen = np.concatenate([y.numpy() for _, y in dl])
    assert sorted(seen) == list(range(10)) and len(dl) == 3
    x, y = next(iter(dl))
    assert x.dtype == np.float32 and y.dtype.kind == "i"
    assert len(DataLoader(ds, batch_size=4, drop_last=True)) == 2
    assert [len(y) for _, y in DataLoader(ds, batch_size=4, drop_last=True)] == [4, 4]


def test_shuffling_is_reproducible_from_manual_seed():
    ds = TensorDataset(np.arange(20))
    gs.manual_seed(7)
    a = [b[0].tolist() for b in DataLoader(ds, 5, shuffle=True)]
    gs.manual_seed(7)
    b = [b[0].tolist() for b in DataLoader(ds, 5, shuffle=True)]
    gs.manual_seed(8)
    c = [b[0].tolist() for b in DataLoader(ds, 5, shuffle=True)]
    assert a == b and a != c


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="first dimension"):
        TensorDataset(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(TensorDataset(np.zeros(3)), batch_size=0)
    with pytest.raises(ValueError, match="do not add up"):
        random_split(TensorDataset(np.zeros(10)), [3, 3])


def test_random_split_fractions_partition():
    parts = random_split(
        TensorDataset(np.arange(10)), [0.7, 0.3], generator=np.random.default_rng(0)
    )
    assert [len(p) for p in parts] == [7, 3]
    idx = np.concatenate([p.indices for p in parts])
    assert sorted(idx) == list(range(10))


def test_scaler_round_trip_and_constant_feature():
    X = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    sc = StandardScaler().fit(X)
    Z = sc.transform(X)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Z[:, 0].std(), 1)
    assert np.isfinite(Z).all()
    np.testing.assert_allclose(sc.inverse_transform(Z), X)
    again = StandardScaler().load_state_dict(sc.state_dict())
    np.testing.assert_array_equal(again.transform(X), Z)
    with pytest.raises(ValueError, match="2 features"):
        sc.transform(np.zeros((2, 3)))


def test_sliding_windows_are_previous_k_values_to_next():
    X, y = sliding_windows(np.array([10, 11, 12, 13, 14]), 3)
    np.testing.assert_array_equal(X, [[10, 11, 12], [11, 12, 13]])
    np.testing.assert_array_equal(y, [13, 14])
    with pytest.raises(ValueError, match="k must be"):
        sliding_windows(np.arange(3), 3)
