"""BatchNorm1d against PyTorch's through a shared state_dict, and in a compiled step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gradstep as gs
from gradstep import nn, optim

RNG = np.random.default_rng(11)


@pytest.mark.parametrize("shape", [(8, 4), (6, 4, 5)])
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("affine", [True, False])
def test_training_and_eval_equal_pytorchs(shape, momentum, affine):
    theirs = torch.nn.BatchNorm1d(4, momentum=momentum, affine=affine).double()
    if affine:
        with torch.no_grad():
            theirs.weight.uniform_(0.5, 1.5)
            theirs.bias.uniform_(-1, 1)
    ours = nn.BatchNorm1d(4, momentum=momentum, affine=affine, dtype=np.float64)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    for _ in range(3):
        x = RNG.standard_normal(shape) * 3 + 1
        seed = RNG.standard_normal(shape)
        xo = gs.tensor(x, requires_grad=True, dtype=np.float64)
        xt = torch.tensor(x, requires_grad=True)
        yo, yt = ours(xo), theirs(xt)
        np.testing.assert_allclose(yo.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
        yo.backward(seed)
        yt.backward(torch.tensor(seed))
        np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-12)
        for name, p in ours.named_parameters():
            ref = dict(theirs.named_parameters())[name].grad.numpy()
            np.testing.assert_allclose(p.grad.numpy(), ref, rtol=1e-9, atol=1e-12)
        ours.zero_grad()
        theirs.zero_grad()
    state, ref = ours.state_dict(), theirs.state_dict()
    assert list(state) == list(ref)  # PyTorch's keys, num_batches_tracked included
    for k in state:
        np.testing.assert_allclose(state[k], ref[k].numpy(), rtol=1e-12, err_msg=k)
    assert state["num_batches_tracked"].dtype == np.int64 and int(state["num_batches_tracked"]) == 3
    ours.eval()
    theirs.eval()
    x = RNG.standard_normal(shape)
    np.testing.assert_allclose(
        ours(gs.tensor(x, dtype=np.float64)).numpy(),
        theirs(torch.tensor(x)).detach().numpy(),
        rtol=1e-10,
        atol=1e-12,
    )


def test_without_running_stats_it_always_uses_the_batch():
    ours = nn.BatchNorm1d(3, track_running_stats=False, dtype=np.float64)
    theirs = torch.nn.BatchNorm1d(3, track_running_stats=False).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.eval()
    theirs.eval()
    x = RNG.standard_normal((5, 3))
    np.testing.assert_allclose(
        ours(gs.tensor(x, dtype=np.float64)).numpy(), theirs(torch.tensor(x)).detach().numpy()
    )


def test_bad_input_is_named():
    bn = nn.BatchNorm1d(4)
    with pytest.raises(ValueError, match=r"\(N, 4\).*\(3, 5\)"):
        bn(gs.zeros((3, 5)))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(gs.zeros((1, 4)))
    bn.eval()
    assert bn(gs.ones((1, 4))).shape == (1, 4)  # one sample is fine in eval()
    with pytest.raises(ValueError, match="num_features"):
        nn.BatchNorm1d(0)


def _train(compiled: bool):
    gs.manual_seed(0)
    with gs.default_dtype(np.float64):
        model = nn.Sequential(nn.Linear(3, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 1))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(x, y):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    step = gs.compile(step) if compiled else step
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(5):
        x = gs.tensor(rng.standard_normal((16, 3)), dtype=np.float64)
        y = gs.tensor(rng.standard_normal((16, 1)), dtype=np.float64)
        losses.append(float(step(x, y)))
    model.eval()
    out = model(gs.tensor(np.ones((2, 3)), dtype=np.float64)).numpy()
    return losses, model.state_dict(), out, step


def test_a_compiled_step_updates_running_statistics_as_eager_does():
    eager_losses, eager_state, eager_out, _ = _train(False)
    losses, state, out, step = _train(True)
    assert step.replays == 4
    assert losses == eager_losses
    for k in eager_state:
        np.testing.assert_array_equal(state[k], eager_state[k], err_msg=k)
    assert int(state["1.num_batches_tracked"]) == 5
    np.testing.assert_array_equal(out, eager_out)
