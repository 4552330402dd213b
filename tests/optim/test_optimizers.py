"""Every optimizer follows PyTorch's trajectory: same weights, same batches, 200 steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradstep import nn, optim
from gradstep.backend import default_dtype

CONFIGS = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.3)),
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-2, weight_decay=1e-2, amsgrad=True)),
    ("AdamW", dict(lr=1e-2)),
    ("RMSprop", dict(lr=1e-3)),
    ("RMSprop", dict(lr=1e-3, momentum=0.9, centered=True, weight_decay=1e-3)),
    ("Adagrad", dict(lr=5e-2, lr_decay=1e-3, initial_accumulator_value=0.1)),
]


@pytest.mark.parametrize(("name", "kwargs"), CONFIGS, ids=lambda v: str(v))
def test_trajectory_equals_pytorch_for_200_steps(name, kwargs):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 6))
    y = np.sin(X @ rng.standard_normal((6, 1)))
    with default_dtype(np.float64):
        model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1))
    tmodel = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    tmodel = tmodel.double()
    tmodel.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()})
    opt = getattr(optim, name)(model.parameters(), **kwargs)
    topt = getattr(torch.optim, name)(tmodel.parameters(), **kwargs)
    loss_fn, tloss_fn = nn.MSELoss(), torch.nn.MSELoss()
    for step in range(200):
        idx = rng.choice(256, 32, replace=False)
        opt.zero_grad()
        loss = loss_fn(model(X[idx]), y[idx])
        loss.backward()
        opt.step()
        topt.zero_grad()
        tloss = tloss_fn(tmodel(torch.tensor(X[idx])), torch.tensor(y[idx]))
        tloss.backward()
        topt.step()
        # The issue asks for 1e-7; we hold 1e-10 (measured: 4e-15 worst over these configs).
        np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-10, err_msg=f"step {step}")
    for k, v in tmodel.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[k], v.numpy(), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda p: optim.SGD(p, lr=-1), "lr"),
        (lambda p: optim.Adam(p, betas=(0.9, 1.0)), "beta"),
        (lambda p: optim.Adam(p, betas=(-0.1, 0.9)), "beta"),
        (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), "momentum"),
        (lambda p: optim.RMSprop(p, eps=-1), "eps"),
        (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "Nesterov"),
    ],
)
def test_invalid_hyperparameters_name_the_argument(build, match):
    with pytest.raises(ValueError, match=match):
        build(nn.Linear(2, 1).parameters())


def test_state_dict_round_trip_continues_identically():
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((64, 3)), rng.standard_normal((64, 1))
    with default_dtype(np.float64):
        a = nn.Linear(3, 1)
        b = nn.Linear(3, 1)
    b.load_state_dict(a.state_dict())
    oa = optim.Adam(a.parameters(), lr=0.1)
    for _ in range(5):
        oa.zero_grad()
        nn.MSELoss()(a(X), y).backward()
        oa.step()
    b.load_state_dict(a.state_dict())
    ob = optim.Adam(b.parameters(), lr=0.1)
    ob.load_state_dict(oa.state_dict())
    for opt, m in ((oa, a), (ob, b)):
        for _ in range(5):
            opt.zero_grad()
            nn.MSELoss()(m(X), y).backward()
            opt.step()
    np.testing.assert_array_equal(a.weight.data, b.weight.data)


def test_schedulers_match_pytorch():
    cases = [
        ("StepLR", dict(step_size=3, gamma=0.5), "StepLR"),
        ("ExponentialLR", dict(gamma=0.9), "ExponentialLR"),
        ("CosineAnnealingLR", dict(T_max=10, eta_min=0.01), "CosineAnnealingLR"),
    ]
    for ours, kw, theirs in cases:
        opt = optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1)
        topt = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)
        s, ts = (
            getattr(optim, ours)(opt, **kw),
            getattr(torch.optim.lr_scheduler, theirs)(topt, **kw),
        )
        for _ in range(12):
            np.testing.assert_allclose(s.get_last_lr(), ts.get_last_lr(), rtol=1e-10)
            topt.step()
            s.step()
            ts.step()
    opt = optim.SGD(nn.Linear(1, 1).parameters(), lr=1.0)
    warm = optim.LinearWarmup(opt, warmup_epochs=4, start_factor=0.2)
    lrs = []
    for _ in range(6):
        lrs.append(warm.get_last_lr()[0])
        warm.step()
    np.testing.assert_allclose(lrs, [0.2, 0.4, 0.6, 0.8, 1.0, 1.0])


def test_clip_grad_norm_matches_pytorch():
    g = np.random.default_rng(0).standard_normal((4, 3))
    with default_dtype(np.float64):
        layer = nn.Linear(3, 4, bias=False)
    layer.weight.grad = g.copy()
    t = torch.nn.Parameter(torch.zeros(4, 3, dtype=torch.float64))
    t.grad = torch.tensor(g)
    n1 = optim.clip_grad_norm_(layer.parameters(), 0.5)
    n2 = torch.nn.utils.clip_grad_norm_([t], 0.5)
    np.testing.assert_allclose(n1, n2.item())
    np.testing.assert_allclose(layer.weight.grad, t.grad.numpy(), rtol=1e-12)
