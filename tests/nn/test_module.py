from __future__ import annotations

import numpy as np
import pytest
import torch

import gradstep as gs
from gradstep import nn


def test_registration_keys_and_parameters():
    m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert list(m.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [p.shape for p in m.parameters()] == [(4, 3), (4,), (2, 4), (2,)]
    assert m.num_parameters() == 4 * 3 + 4 + 2 * 4 + 2
    assert "Linear(in_features=3, out_features=4, bias=True)" in repr(m)


def test_linear_default_init_is_pytorchs_uniform_bound():
    gs.manual_seed(0)
    layer = nn.Linear(25, 400)
    bound = 1 / np.sqrt(25)
    for p in (layer.weight.data, layer.bias.data):
        assert p.min() >= -bound and p.max() <= bound
        assert p.max() > 0.9 * bound and p.min() < -0.9 * bound


def test_pytorch_state_dict_loads_directly_and_gives_the_same_output():
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Sigmoid(), torch.nn.Linear(7, 2))
    m = nn.Sequential(nn.Linear(5, 7), nn.Sigmoid(), nn.Linear(7, 2))
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    np.testing.assert_allclose(m(x).data, tm(torch.tensor(x)).detach().numpy(), rtol=1e-5)


def test_load_state_dict_reports_missing_unexpected_and_shapes_by_name():
    m = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    state = m.state_dict()
    state.pop("1.bias")
    state["2.weight"] = np.zeros(1)
    state["0.weight"] = np.zeros((9, 9))
    with pytest.raises(ValueError) as e:
        m.load_state_dict(state)
    msg = str(e.value)
    assert "1.bias" in msg and "2.weight" in msg and "0.weight: shape (9, 9)" in msg
    good = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1)).state_dict()
    out = m.load_state_dict({k: v for k, v in good.items() if k != "1.bias"}, strict=False)
    assert out["missing_keys"] == ["1.bias"]
    np.testing.assert_array_equal(m[0].weight.data, good["0.weight"])


def test_state_dict_is_a_snapshot():
    m = nn.Linear(2, 1)
    snap = m.state_dict()
    m.weight.data += 1
    assert not np.array_equal(snap["weight"], m.weight.data)


def test_train_eval_dropout_and_zero_grad():
    gs.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 50), nn.Dropout(0.5))
    x = np.ones((8, 4))
    assert (m(x).data == 0).any()
    m.eval()
    assert not m[1].training
    a, b = m(x).data, m(x).data
    np.testing.assert_array_equal(a, b)
    m.train()
    m(x).sum().backward()
    assert m[0].weight.grad is not None
    m.zero_grad()
    assert m[0].weight.grad is None


def test_sigmoid_sum_is_the_lectures_formula():
    gs.manual_seed(1)
    model = nn.SigmoidSum(2, 3)
    x = np.random.default_rng(0).standard_normal((5, 2))
    W, bi = model[0].weight.data, model[0].bias.data
    c, b = model[2].weight.data[0], model[2].bias.data[0]
    expected = b + (c * (1 / (1 + np.exp(-(x @ W.T + bi))))).sum(axis=1)
    np.testing.assert_allclose(model(x).data[:, 0], expected, rtol=1e-5)
    relu = nn.ReLUSum(1, 4)
    assert isinstance(relu[1], nn.ReLU) and relu(np.ones((2, 1))).shape == (2, 1)


def test_module_without_super_init_is_a_clear_error():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.zeros(2))

    with pytest.raises(AttributeError, match="super"):
        Bad()


def test_loss_modules_and_bad_arguments():
    assert nn.MSELoss(reduction="sum")(gs.ones(3), np.zeros(3)).item() == 3.0
    assert nn.L1Loss()(gs.ones(3), np.zeros(3)).item() == 1.0
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(0, 3)


def test_replacing_a_child_keeps_its_place():
    """PyTorch's model[1] = nn.Tanh() keeps the order; it used to move the child to the end,
    so a Sequential ran Linear, Linear, Tanh."""
    import numpy as np

    from gradstep import nn

    m = nn.mlp(2, [3], 1)
    m[1] = nn.Tanh()
    assert [type(c).__name__ for c in m.children()] == ["Linear", "Tanh", "Linear"]
    x = np.ones((4, 2), np.float32)
    expected = m[2](m[1](m[0](x))).data
    np.testing.assert_array_equal(m(x).data, expected)
    m.extra = nn.ReLU()
    m.extra = nn.Sigmoid()
    assert list(m._modules) == ["0", "1", "2", "extra"]
