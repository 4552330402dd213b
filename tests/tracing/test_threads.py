"""A trace records only the thread that runs the step: the engine's hook is one per process,
and the lab trains in worker threads while other threads compute."""

from __future__ import annotations

import threading

import numpy as np

import gradstep as gs
from gradstep import functional as F
from gradstep import nn, optim


def _model(seed):
    gs.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 1)).to(np.float64)


def _eager_step(model, opt, x, y):
    opt.zero_grad()
    loss = F.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    return loss


def test_another_threads_ops_during_a_trace_are_not_part_of_it():
    rng = np.random.default_rng(0)
    xs = [gs.tensor(rng.standard_normal((8, 3)), dtype=np.float64) for _ in range(3)]
    ys = [gs.tensor(rng.standard_normal((8, 1)), dtype=np.float64) for _ in range(3)]
    traced, other = threading.Event(), threading.Event()
    a_model, b_model = _model(1), _model(2)
    a_opt = optim.SGD(a_model.parameters(), lr=0.1)
    b_opt = optim.Adam(b_model.parameters(), lr=0.01)
    b_losses, errors = [], []

    def step(x, y):
        a_opt.zero_grad()
        h = a_model[0](x)
        if not traced.is_set():  # the trace: let the other thread train in the middle of it
            traced.set()
            assert other.wait(30)
        loss = F.mse_loss(a_model[2](a_model[1](h)), y)
        loss.backward()
        a_opt.step()
        return loss

    compiled = gs.compile(step)

    def train_b():
        try:
            assert traced.wait(30)
            for x, y in zip(xs, ys):  # forward, backward and a replayable optimizer step
                b_losses.append(_eager_step(b_model, b_opt, x, y).item())
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)
        finally:
            other.set()

    b = threading.Thread(target=train_b)
    b.start()
    a_losses = [compiled(x, y).item() for x, y in zip(xs, ys)]
    b.join(30)
    assert not errors and not b.is_alive()
    assert compiled.traces == 1 and compiled.replays == 2

    # both equal the same training run alone, bit for bit
    for model_seed, opt_cls, kw, losses, params in (
        (1, optim.SGD, {"lr": 0.1}, a_losses, a_model),
        (2, optim.Adam, {"lr": 0.01}, b_losses, b_model),
    ):
        ref = _model(model_seed)
        ref_opt = opt_cls(ref.parameters(), **kw)
        expected = [_eager_step(ref, ref_opt, x, y).item() for x, y in zip(xs, ys)]
        assert losses == expected
        for p, q in zip(params.parameters(), ref.parameters()):
            assert p.data.tobytes() == q.data.tobytes()


def test_two_threads_can_trace_their_own_steps_at_once():
    rng = np.random.default_rng(1)
    data = [
        (
            gs.tensor(rng.standard_normal((8, 3)), dtype=np.float64),
            gs.tensor(rng.standard_normal((8, 1)), dtype=np.float64),
        )
    ]
    data *= 20
    results, errors = {}, []
    start = threading.Barrier(2)

    models = {seed: _model(seed) for seed in (3, 4)}  # the global generator: made here

    def run(seed):
        try:
            model = models[seed]
            opt = optim.SGD(model.parameters(), lr=0.05)
            compiled = gs.compile(lambda x, y: _eager_step(model, opt, x, y))
            start.wait(30)
            results[seed] = ([compiled(x, y).item() for x, y in data], compiled.traces)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run, args=(s,)) for s in (3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for seed in (3, 4):
        ref = _model(seed)
        ref_opt = optim.SGD(ref.parameters(), lr=0.05)
        assert results[seed] == ([_eager_step(ref, ref_opt, x, y).item() for x, y in data], 1)


def test_a_compiled_step_inside_a_replayable_call_of_a_trace_does_not_wait_for_itself():
    """The trace's own thread, inside a gs.replayable call (not recorded), calls another
    compiled step: it runs as part of that call, and nothing waits on the trace lock."""
    model = _model(5)
    opt = optim.SGD(model.parameters(), lr=0.1)
    inner = gs.compile(lambda x: (model(x) * 2).sum())

    @gs.replayable
    def log_norm(x):
        inner(x)  # e.g. a compiled metric, called from a replayable hook

    def step(x, y):
        loss = _eager_step(model, opt, x, y)
        log_norm(x)
        return loss

    outer = gs.compile(step)
    x = gs.tensor(np.ones((4, 3)), dtype=np.float64)
    y = gs.tensor(np.zeros((4, 1)), dtype=np.float64)
    done = []
    t = threading.Thread(target=lambda: done.append([outer(x, y).item() for _ in range(3)]))
    t.start()
    t.join(60)
    assert not t.is_alive() and len(done[0]) == 3
    assert outer.traces == 1 and outer.replays == 2
