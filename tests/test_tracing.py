"""gradstep.compile: a replayed step equals eager execution bit for bit, and falls back to eager
(with one warning line) where a replay could differ."""

import warnings

import numpy as np
import pytest

import gradstep as gs
import gradstep.functional as F
from gradstep import nn, optim
from gradstep.optim import clip_grad_norm_
from gradstep.optim.schedulers import StepLR


class Shared(nn.Module):
    """A weight used twice (gradients accumulate) and a broadcast add (gradient un-broadcast)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.shift = nn.Parameter(np.zeros((1, 4)))
        self.head = nn.Linear(4, 1)

    def forward(self, x):
        h = F.tanh(self.lin(x)) + self.shift
        h = self.lin(h) * h
        return self.head(h.relu())


def _setup(kind, dtype):
    gs.manual_seed(3)
    with gs.default_dtype(dtype):
        if kind == "sigmoid-mse-sgd":
            model = nn.mlp(4, [8], 1, "sigmoid")
            opt = optim.SGD(model.parameters(), lr=0.1)
        elif kind == "relu-ce-adam":
            model = nn.mlp(4, [16, 8], 3)
            opt = optim.Adam(model.parameters(), lr=0.01)
        elif kind == "dropout-momentum":
            model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))
            opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
        else:  # shared weights, AdamW, clipping and a per-step scheduler inside the step
            model = Shared()
            opt = optim.AdamW(model.parameters(), lr=0.02, weight_decay=0.1)
    sched = StepLR(opt, step_size=3, gamma=0.5) if kind == "shared" else None
    loss_fn = nn.CrossEntropyLoss() if kind == "relu-ce-adam" else nn.MSELoss()

    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        if sched is not None:
            clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        if sched is not None:
            sched.step()
        return loss

    return model, opt, step


def _batches(kind, dtype, n=12, sizes=(16,)):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        b = sizes[i % len(sizes)]
        x = rng.standard_normal((b, 4)).astype(dtype)
        if kind == "relu-ce-adam":
            y = rng.integers(0, 3, b)
        else:
            y = rng.standard_normal((b, 1)).astype(dtype)
        out.append((x, y))
    return out


def _t(a, dtype=np.float64):
    return gs.tensor(a, dtype=dtype if a.dtype.kind == "f" else None)


def _run(kind, dtype, compiled, batches, as_arrays=False):
    model, opt, step = _setup(kind, dtype)
    gs.manual_seed(11)  # dropout masks come from the global generator
    step = gs.compile(step) if compiled else step
    losses = []
    for x, y in batches:
        loss = step(x, y) if as_arrays else step(gs.tensor(x, dtype=dtype), _t(y, dtype))
        losses.append(loss.data.copy())
    grads = {k: p.grad.numpy().copy() for k, p in model.named_parameters()}
    return losses, model.state_dict(), opt.state_dict(), grads, step


def _assert_identical(a, b):
    la, ma, oa, ga, _ = a
    lb, mb, ob, gb, _ = b
    for x, y in zip(la, lb):
        assert x.tobytes() == y.tobytes()
    for k in ma:
        assert ma[k].tobytes() == mb[k].tobytes(), k
        assert ga[k].tobytes() == gb[k].tobytes(), k
    for i, s in oa["state"].items():
        for name, v in s.items():
            if isinstance(v, np.ndarray):
                assert v.tobytes() == ob["state"][i][name].tobytes()
            else:
                assert v == ob["state"][i][name]
    assert [g["lr"] for g in oa["param_groups"]] == [g["lr"] for g in ob["param_groups"]]


KINDS = ["sigmoid-mse-sgd", "relu-ce-adam", "dropout-momentum", "shared"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", KINDS)
def test_replay_is_bit_identical_to_eager(kind, dtype):
    batches = _batches(kind, dtype)
    eager = _run(kind, dtype, False, batches)
    compiled = _run(kind, dtype, True, batches)
    _assert_identical(eager, compiled)
    step = compiled[-1]
    assert (step.traces, step.replays) == (1, len(batches) - 1)
    # and training did something: the parameters moved
    model, *_ = _setup(kind, dtype)
    before = model.state_dict()
    assert any(not np.array_equal(before[k], compiled[1][k]) for k in before)


def test_nothing_a_replay_returns_or_hands_out_is_overwritten_by_the_next(monkeypatch):
    gs.manual_seed(0)
    model = nn.mlp(3, [5], 2)
    opt = optim.SGD(model[2].parameters(), lr=0.1)  # model[0] is not the optimizer's
    frozen_lr = 0.1

    @gs.replayable  # Python code on .grad runs again on every replay only inside one of these
    def update(params):
        with gs.no_grad():
            for p in params:
                p.data -= frozen_lr * p.grad

    @gs.compile
    def step(x, y):
        opt.zero_grad()
        model[0].zero_grad()
        hidden = model[1](model[0](x))  # returned: must not be overwritten by the next call
        out = model[2](hidden)
        loss = F.mse_loss(out, y)
        loss.backward()
        opt.step()
        update(list(model[0].parameters()))
        return loss, hidden, out.reshape(-1)  # and a view of an op's output

    rng = np.random.default_rng(1)
    kept, grads = [], []
    for _ in range(4):
        x, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
        loss, hidden, flat = step(gs.tensor(x), gs.tensor(y))
        kept.append((hidden, hidden.data.copy(), flat, flat.data.copy()))
        grads.append((model[0].weight.grad.data, model[0].weight.grad.numpy().copy()))
    assert step.replays == 3
    for hidden, hidden_then, flat, flat_then in kept:
        assert np.array_equal(hidden.data, hidden_then)
        assert np.array_equal(flat.data, flat_then)
    # the gradient of a parameter no optimizer holds is fresh each step, as in eager
    for g, g_then in grads:
        assert np.array_equal(g, g_then)


def _flat_of(opt):
    (flat,) = opt._flat
    return flat


def test_optimizer_holds_parameters_in_one_buffer_and_state_dict_is_per_parameter():
    gs.manual_seed(0)
    model = nn.mlp(3, [5], 2)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    opt = optim.Adam(model.parameters(), lr=0.1)
    flat = _flat_of(opt)
    for k, v in model.state_dict().items():  # same values, now views of the flat buffer
        assert np.array_equal(v, before[k])
    assert all(np.shares_memory(p.data, flat.data) for p in model.parameters())
    x, y = gs.randn(4, 3), gs.randn(4, 2)
    for _ in range(2):
        opt.zero_grad()
        F.mse_loss(model(x), y).backward()
        opt.step()
    state = opt.state_dict()["state"]
    assert sorted(state) == [0, 1, 2, 3]
    for i, p in enumerate(model.parameters()):
        assert state[i]["step"] == 2
        assert state[i]["exp_avg"].shape == p.shape
        assert not np.shares_memory(state[i]["exp_avg"], flat.state["exp_avg"])  # a copy
        # the live per-parameter state is a view of the flat state
        assert np.shares_memory(opt.state[id(p)]["exp_avg"], flat.state["exp_avg"])


@pytest.mark.parametrize("name", ["SGD", "momentum", "Adam"])
def test_flat_update_falls_back_and_resumes_with_the_same_bits(name):
    """A parameter without gradient, a replaced p.data and a loaded state: each update still
    equals updating the parameters one by one (checked against an optimizer with no flat
    groups)."""

    def make(flat: bool):
        gs.manual_seed(0)
        with gs.default_dtype(np.float64):
            model = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 2), nn.Linear(2, 2))
        params = list(model.parameters())
        if name == "Adam":
            opt = optim.Adam(params, lr=0.05)
        else:
            opt = optim.SGD(params, lr=0.1, momentum=0.9 if name == "momentum" else 0.0)
        if not flat:
            opt._flat = [None]
        return model, opt

    def run(flat: bool):
        model, opt = make(flat)
        rng = np.random.default_rng(2)
        for t in range(8):
            x = gs.tensor(rng.standard_normal((5, 3)), dtype=np.float64)
            y = gs.tensor(rng.standard_normal((5, 2)), dtype=np.float64)
            opt.zero_grad()
            out = model[2](model[1](model[0](x))) if t == 2 else model(x)  # t=2: model[3] idle
            F.mse_loss(out, y).backward()
            if t == 4:
                model[0].weight.data = model[0].weight.data * 0.5
            if t == 5:
                saved = opt.state_dict()
                opt.load_state_dict(saved)
            opt.step()
        return model.state_dict(), opt.state_dict()

    (m1, o1), (m2, o2) = run(True), run(False)
    for k in m1:
        assert m1[k].tobytes() == m2[k].tobytes(), k
    for i, s in o1["state"].items():
        for k, v in s.items():
            assert np.asarray(v).tobytes() == np.asarray(o2["state"][i][k]).tobytes()


def test_a_replay_updates_the_flat_buffer_in_one_call():
    gs.manual_seed(0)
    model = nn.mlp(3, [5], 2, "sigmoid")
    opt = optim.SGD(model.parameters(), lr=0.1)
    flat = _flat_of(opt)
    flat_steps = []
    real = opt._update
    opt._update = lambda p, *a: (p is flat.data and flat_steps.append(1)) or real(p, *a)

    @gs.compile
    def step(x, y):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss

    x, y = gs.randn(6, 3), gs.randn(6, 2)
    for _ in range(3):
        step(x, y)
    assert step.replays == 2 and len(flat_steps) == 3  # one flat update a step
    for p, home in zip(model.parameters(), flat.homes):
        assert np.array_equal(p.grad.data, home)  # copied in for the update


def test_replay_accumulating_into_a_held_gradient_adds_instead_of_overwriting():
    """Without zero_grad, a leaf's .grad from the last step is added to, as in eager."""

    def run(compiled):
        gs.manual_seed(0)
        with gs.default_dtype(np.float64):
            model = nn.mlp(3, [5], 2)
        opt = optim.SGD(model.parameters(), lr=0.1)

        def step(x, y):  # accumulates: zero_grad every other call, outside the step
            loss = F.mse_loss(model(x), y)
            loss.backward()
            F.mse_loss(model(x * 2), y).backward()  # a second backward in the same step
            return loss

        step = gs.compile(step) if compiled else step
        rng = np.random.default_rng(0)
        for t in range(6):
            x = gs.tensor(rng.standard_normal((4, 3)), dtype=np.float64)
            y = gs.tensor(rng.standard_normal((4, 2)), dtype=np.float64)
            step(x, y)
            if t % 2:
                opt.step()
                opt.zero_grad()
        return model.state_dict()

    eager, compiled = run(False), run(True)
    for k in eager:
        assert eager[k].tobytes() == compiled[k].tobytes(), k


def test_numpy_arguments_are_converted_like_eager():
    # float64 arrays into a float32 model: the Module converts them, in the replay as well
    batches = _batches("sigmoid-mse-sgd", np.float64)
    eager = _run("sigmoid-mse-sgd", np.float32, False, batches, as_arrays=True)
    compiled = _run("sigmoid-mse-sgd", np.float32, True, batches, as_arrays=True)
    _assert_identical(eager, compiled)
    assert compiled[-1].replays == len(batches) - 1


def test_a_new_batch_shape_is_traced_again_and_kept_with_one_notice():
    batches = _batches("relu-ce-adam", np.float64, n=9, sizes=(16, 16, 5))
    eager = _run("relu-ce-adam", np.float64, False, batches)
    with pytest.warns(gs.CompileWarning) as caught:
        compiled = _run("relu-ce-adam", np.float64, True, batches)
    _assert_identical(eager, compiled)
    assert (compiled[-1].traces, compiled[-1].replays) == (2, 7)
    # one line, once (the shape (5, 4) comes back twice more and replays silently)
    assert [str(w.message) for w in caught] == [
        "gradstep.compile(step): argument 0 is a tensor of shape (5, 4) and dtype float64, "
        "traced with a tensor of shape (16, 4) and dtype float64: this call runs eagerly and "
        "is traced again (trace 2 of at most 8)"
    ]
    model, opt, step = _setup("relu-ce-adam", np.float64)
    quiet = gs.compile(step, notice_retrace=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for x, y in batches[:3]:
            quiet(_t(x), _t(y))
    assert quiet.traces == 2


def test_train_and_eval_modes_get_their_own_trace():
    model, opt, _ = _setup("dropout-momentum", np.float64)

    @gs.compile
    def predict(x):
        return model(x)

    x = gs.tensor(np.ones((4, 4)), dtype=np.float64)
    gs.manual_seed(0)
    with gs.no_grad():
        train_a = predict(x).data.copy()
        train_b = predict(x).data.copy()  # replay: a fresh dropout mask
        model.eval()
        with pytest.warns(gs.CompileWarning, match=r"module modes \(train/eval\) differ"):
            eval_a = predict(x).data.copy()
        eval_b = predict(x).data.copy()
    assert predict.traces == 2
    assert not np.array_equal(train_a, train_b)
    assert np.array_equal(eval_a, eval_b)
    gs.manual_seed(0)
    model.train()
    with gs.no_grad():
        assert np.array_equal(model(x).data, train_a)
        assert np.array_equal(model(x).data, train_b)


def test_reading_a_value_inside_the_step_falls_back_to_eager():
    model, opt, _ = _setup("sigmoid-mse-sgd", np.float64)
    seen = []

    @gs.compile
    def step(x, y):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        if loss.item() > 1e9:  # data-dependent control flow: a replay cannot see it
            return loss
        seen.append(loss.item())
        loss.backward()
        opt.step()
        return loss

    batches = _batches("sigmoid-mse-sgd", np.float64, n=4)
    with pytest.warns(gs.CompileWarning, match=r"reads a tensor's value \(item\(\)\)"):
        losses = [step(_t(x), _t(y)) for x, y in batches]
    assert len(seen) == 4 and step.replays == 0
    assert [float(v.data) for v in losses] == seen
    eager = _run("sigmoid-mse-sgd", np.float64, False, batches)
    assert [float(v) for v in eager[0]] == seen


def test_numpy_code_on_an_argument_falls_back_to_eager():
    model, opt, _ = _setup("sigmoid-mse-sgd", np.float64)

    @gs.compile
    def step(x, y):
        opt.zero_grad()
        loss = F.mse_loss(model(x * 2.0), y)  # x is a NumPy array: x * 2 is invisible
        loss.backward()
        opt.step()
        return loss

    rng = np.random.default_rng(0)
    with pytest.warns(gs.CompileWarning, match="argument 0 reaches no gradstep op"):
        step(rng.standard_normal((8, 4)), rng.standard_normal((8, 1)))
    x, y = rng.standard_normal((8, 4)), rng.standard_normal((8, 1))
    before = F.mse_loss(model(x * 2.0), y).item()
    assert step(x, y).item() == before  # computed from the new x, not the traced one


def test_returning_a_python_number_falls_back():
    model, opt, _ = _setup("sigmoid-mse-sgd", np.float64)

    @gs.compile
    def step(x, y):
        loss = F.mse_loss(model(x), y)
        loss.backward()
        return loss.data.sum()  # .data is invisible, but the returned number is seen

    x, y = _batches("sigmoid-mse-sgd", np.float64, n=1)[0]
    with pytest.warns(gs.CompileWarning, match="returns a number"):
        step(_t(x), _t(y))


def test_too_many_signatures_warn_once_and_run_eagerly():
    model, opt, _ = _setup("sigmoid-mse-sgd", np.float64)
    step = gs.compile(lambda x: F.mse_loss(model(x), gs.zeros(len(x), 1)), max_traces=2)
    with gs.default_dtype(np.float64):
        step(gs.ones(2, 4))
        with pytest.warns(gs.CompileWarning, match=r"traced again \(trace 2 of at most 2\)"):
            step(gs.ones(3, 4))
        with pytest.warns(gs.CompileWarning, match="more than 2 different"):
            out = step(gs.ones(4, 4))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # said once only
            step(gs.ones(5, 4))
        assert out.item() == F.mse_loss(model(gs.ones(4, 4)), gs.zeros(4, 1)).item()
    assert step.traces == 2


def test_gradient_with_respect_to_an_input_reaches_each_new_input():
    w = gs.tensor(np.arange(3.0), requires_grad=True, dtype=np.float64)

    @gs.compile
    def input_grad(x):
        (x * w).sum().backward()

    for k in range(3):
        x = gs.tensor(np.full(3, k + 1.0), requires_grad=True, dtype=np.float64)
        input_grad(x)
        assert np.array_equal(x.grad, np.arange(3.0))
    assert np.array_equal(w.grad, np.full(3, 6.0))  # 1 + 2 + 3, accumulated
    assert input_grad.replays == 2


@pytest.mark.parametrize("case", range(2))
def test_replay_never_lets_a_leaf_adopt_a_gradient_handed_on(case):
    from tests.test_autograd import _graphs_passing_a_gradient_on

    build, value, expected = _graphs_passing_a_gradient_on()[case]
    a = gs.tensor(value, dtype=np.float64, requires_grad=True)

    @gs.compile
    def step():
        a.grad = None
        build(a).backward()

    for _ in range(3):
        step()
        np.testing.assert_array_equal(a.grad, np.full(np.shape(value), expected))
    assert step.replays == 2


def test_keyword_arguments_nested_steps_and_detached_results():
    model, opt, _ = _setup("sigmoid-mse-sgd", np.float64)
    inner = gs.compile(lambda x, *, target: F.mse_loss(model(x), target))

    @gs.compile
    def outer(x, *, target):
        loss = inner(x, target=target)  # a compiled step inside a trace is part of it
        return {"loss": loss, "double": (loss * 2,)}

    batches = _batches("sigmoid-mse-sgd", np.float64, n=3)
    for x, y in batches:
        out = outer(_t(x), target=_t(y))
        ref = F.mse_loss(model(_t(x)), _t(y))
        assert out["loss"].item() == ref.item()
        assert out["double"][0].item() == 2 * ref.item()
        assert out["loss"].grad_fn is None and not out["loss"].requires_grad
    assert outer.replays == 2 and inner.traces == 0


def test_an_error_while_tracing_propagates_and_nothing_is_kept():
    model, opt, _ = _setup("relu-ce-adam", np.float64)
    step = gs.compile(lambda x, y: F.cross_entropy(model(x), y))
    x = gs.tensor(np.zeros((2, 4)), dtype=np.float64)
    with pytest.raises(ValueError, match="label 7 at index 1 is outside"):
        step(x, gs.tensor(np.array([0, 7])))
    assert step.traces == 0
    step(x, gs.tensor(np.array([0, 1])))
    with pytest.raises(ValueError, match="label 9 at index 0 is outside"):  # checked in replay too
        step(x, gs.tensor(np.array([9, 1])))


def test_replayable_user_functions_run_on_every_replay():
    w = gs.tensor(np.ones(3), requires_grad=True, dtype=np.float64)
    calls = []

    @gs.replayable
    def halve_gradient(t):
        calls.append(1)
        t.grad *= 0.5

    @gs.compile
    def step(x):
        w.grad = None
        (w * x).sum().backward()
        halve_gradient(w)

    for k in range(3):
        step(gs.tensor(np.full(3, k + 1.0), dtype=np.float64))
        assert np.array_equal(w.grad, np.full(3, (k + 1) / 2))
    assert len(calls) == 3 and step.replays == 2


def test_bad_arguments():
    with pytest.raises(TypeError, match="callable"):
        gs.compile(3)
    with pytest.raises(ValueError, match="max_traces"):
        gs.compile(lambda: None, max_traces=0)


def test_replay_skips_the_checks_its_signature_fixes_but_not_value_checks(monkeypatch):
    from gradstep.ops import linalg

    calls = []
    check = linalg.Linear.check
    monkeypatch.setattr(
        linalg.Linear, "check", staticmethod(lambda *a: calls.append(1) or check(*a))
    )
    gs.manual_seed(0)
    model = nn.mlp(3, [5], 4)
    opt = optim.SGD(model.parameters(), lr=0.1)

    @gs.compile
    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    x = gs.randn(6, 3)
    for _ in range(3):
        step(x, np.array([0, 1, 2, 3, 0, 1]))
    assert step.replays == 2 and len(calls) == 2  # the trace's two layers only
    with pytest.raises(ValueError, match="label 7 at index 2 is outside"):
        step(x, np.array([0, 1, 7, 3, 0, 1]))  # labels are values: checked in every replay
    with pytest.raises(ValueError, match="does not fit a weight"):
        model(gs.randn(6, 2))  # and eager calls still check shapes


def test_replacing_a_parameter_with_another_shape_is_a_clear_error():
    w = gs.tensor(np.ones((2, 3)), requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    w.data = np.zeros((4, 3), np.float32)
    (w * w).sum().backward()
    with pytest.raises(ValueError, match=r"shape \(4, 3\).*holds it as \(2, 3\)"):
        opt.step()


def test_a_childs_eval_is_seen_by_the_compiled_step():
    from gradstep import nn

    gs.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 1))

    @gs.compile
    def predict(x):
        return model(x)

    x = gs.tensor(np.ones((4, 4)), dtype=np.float32)
    with gs.no_grad():
        predict(x)
        predict(x)
        model[1].eval()  # only the child: Sequential.forward used to skip its record
        with pytest.warns(gs.CompileWarning, match=r"module modes \(train/eval\) differ"):
            a = predict(x).data.copy()
        b = predict(x).data.copy()
        eager = model(x).data
    assert np.array_equal(a, b) and np.array_equal(a, eager)
