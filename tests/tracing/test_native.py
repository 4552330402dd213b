"""gradstep.compile(backend="native"): the numba step against eager execution.

In float64 a native step's losses and parameters equal eager execution's to 1e-12 relative over
200 steps (a loss that training drives towards 0 is compared to 1e-12 of the first loss, as
its relative error grows with the cancellation in prediction - target); in float32 the losses
to 1e-5 and each parameter tensor to 1e-5 of its norm.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

import gradstep as gs
import gradstep.functional as F
from gradstep import nn, optim
from gradstep.tracing import CompileWarning
from gradstep.tracing import native as native_mod
from gradstep.tracing import native_program as native_program_mod

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
import bench  # noqa: E402

OPTIMIZERS = {
    "sgd": lambda p: optim.SGD(p, lr=0.05),
    "sgd_decay": lambda p: optim.SGD(p, lr=0.05, weight_decay=0.01),
    "momentum": lambda p: optim.SGD(p, lr=0.05, momentum=0.9, dampening=0.1),
    "nesterov": lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda p: optim.Adam(p, lr=1e-2),
    "adam_decay": lambda p: optim.Adam(p, lr=1e-2, weight_decay=0.01),
    "amsgrad": lambda p: optim.Adam(p, lr=1e-2, amsgrad=True),
    "adamw": lambda p: optim.AdamW(p, lr=1e-2, weight_decay=0.05),
    "rmsprop": lambda p: optim.RMSprop(p, lr=1e-3),
    "rmsprop_full": lambda p: optim.RMSprop(
        p, lr=1e-3, momentum=0.5, centered=True, weight_decay=1e-3
    ),
    "adagrad": lambda p: optim.Adagrad(
        p, lr=0.05, lr_decay=0.01, initial_accumulator_value=0.1, weight_decay=1e-3
    ),
}


def train(case, backend, steps=200, dtype=np.float64, opt=None):
    """Losses and final parameters of ``steps`` steps of a benchmark case."""
    rng = np.random.default_rng(0)
    sizes = case["sizes"]
    x = rng.standard_normal((case["batch"], sizes[0])).astype(dtype)
    if case["loss"] == "mse":
        y = gs.tensor(rng.standard_normal((case["batch"], 1)), dtype=dtype)
    else:
        y = gs.tensor(rng.integers(0, sizes[-1], case["batch"]))
    gs.manual_seed(0)
    model = nn.mlp(sizes[0], sizes[1:-1], sizes[-1], case["act"]).to(dtype)
    make = OPTIMIZERS[opt or {"momentum": "momentum"}.get(case["opt"], case["opt"])]
    optimizer = make(model.parameters())
    loss_fn = nn.MSELoss() if case["loss"] == "mse" else nn.CrossEntropyLoss()
    xb = gs.tensor(x, dtype=dtype)

    def step(xb, yb):
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        return loss

    if backend != "eager":
        step = gs.compile(step, backend=backend)
    losses = np.array([step(xb, y).item() for _ in range(steps)])
    params = [p.data.copy() for p in model.parameters()]
    grads = [p.grad.data.copy() for p in model.parameters()]
    return losses, params, grads, step, optimizer


def assert_close(eager, native, rtol, elementwise=True):
    """Losses, and parameters element by element (an element near 0 compared to its array's
    scale) or, ``elementwise=False``, as vectors (the norm of the difference)."""
    (le, pe, *_), (ln, pn, *_) = eager, native
    np.testing.assert_allclose(ln, le, rtol=rtol, atol=rtol * abs(le[0]))
    for a, b in zip(pe, pn):
        if elementwise:
            np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol * np.abs(a).max())
        else:
            assert np.linalg.norm(b.astype(np.float64) - a) <= rtol * np.linalg.norm(a)


def native_program(step):
    (programs,) = step._programs.values()
    return programs[0].native


@pytest.mark.parametrize("key", "abcd")
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_every_benchmark_case_equals_eager(key, dtype, rtol):
    case = {**bench.CASES[key], **(bench.TINY[key] if key in "cd" else {})}
    steps = 200
    eager = train(case, "eager", steps, dtype)
    native = train(case, "native", steps, dtype)
    assert native_program(native[3]) is not None  # lowered, not replayed
    assert native_program(native[3]).cached  # loaded from the cache a child process filled
    assert native[3].replays == steps - 1
    # float32 Adam divides by sqrt(v): where v is tiny a rounding-level difference in a
    # gradient moves a single weight by 1e-4 of it after 200 steps (measured: 10 of 7,488
    # weights at (b)), while each parameter tensor as a whole stays within 1e-5
    assert_close(eager, native, rtol, elementwise=dtype == np.float64)


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_every_optimizer_equals_eager_and_keeps_its_state(opt):
    case = {**bench.CASES["b"], **bench.TINY["b"]}
    eager = train(case, "eager", 200, np.float64, opt)
    native = train(case, "native", 200, np.float64, opt)
    assert native_program(native[3]) is not None
    # run from numba's disk cache (a child process compiled it), never compiled in here
    assert native_program(native[3]).cached
    assert_close(eager, native, 1e-12)
    se, sn = eager[4].state_dict(), native[4].state_dict()
    assert se["state"].keys() == sn["state"].keys()
    for i in se["state"]:
        for k, v in se["state"][i].items():
            if not np.ndim(v):  # the step count
                assert sn["state"][i][k] == v
                continue
            # running averages of gradients, which near a fit are differences of nearly
            # equal numbers: their last digits are compared to the array's scale
            scale = np.abs(v).max()
            np.testing.assert_allclose(sn["state"][i][k], v, rtol=1e-9, atol=1e-9 * scale)


HEADS = {
    "sigmoid": nn.Sigmoid,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "leaky_relu": lambda: nn.LeakyReLU(0.1),
}


def _tiny_model(dtype=np.float64):
    gs.manual_seed(1)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(dtype)


def _step_for(model, opt, loss_of, updates=1):
    """zero_grad, forward (``model`` is any callable), loss, backward, ``updates`` steps;
    ``cfg`` stands for a step's extra argument (a keyword, an object)."""

    def step(x, y, cfg=None):
        opt.zero_grad()
        loss = loss_of(model(x), y)
        loss.backward()
        for _ in range(updates):
            opt.step()
        return loss

    return step


@pytest.mark.parametrize(
    "head, loss_of, target",
    [
        ("sigmoid", F.mse_loss, "real"),
        ("relu", F.mse_loss, "real"),
        ("tanh", F.mse_loss, "real"),
        ("leaky_relu", F.mse_loss, "real"),
        (None, F.l1_loss, "real"),
        (None, F.huber_loss, "real"),
        (None, lambda out, y: F.huber_loss(out, y, delta=0.25), "real"),
        (None, F.cross_entropy, "labels"),
    ],
)
@pytest.mark.parametrize("scale, rtol", [(3, 1e-12), (1000, 1e-6)])
def test_each_native_op_matches_its_numpy_op(head, loss_of, target, scale, rtol):
    """Forward and backward of every op with a native kernel (Linear, the activations, the
    losses), on moderate inputs and out to +-1000. There saturated activations make the
    gradient's last digits a difference of nearly equal numbers (1 - y*y with y ~ 1), so one
    ulp of tanh or exp, which numba's libm and NumPy's may round differently, shows at 1e-9:
    what is checked at 1000 is that everything stays finite and equal to 1e-6."""
    rng = np.random.default_rng(3)
    x = gs.tensor(rng.uniform(-scale, scale, (16, 3)), dtype=np.float64)
    y = (
        gs.tensor(rng.standard_normal((16, 2)), dtype=np.float64)
        if target == "real"
        else gs.tensor(rng.integers(0, 2, 16))
    )
    results = []
    for backend in ("eager", "native"):
        model = _tiny_model()
        if head:
            model = nn.Sequential(*model, HEADS[head]())
        opt = optim.SGD(model.parameters(), lr=1e-4)
        step = _step_for(model, opt, loss_of)
        if backend == "native":
            step = gs.compile(step, backend="native")
        losses = [step(x, y).item() for _ in range(3)]
        results.append((losses, [p.grad.data.copy() for p in model.parameters()]))
        if backend == "native":
            assert len(step.native_programs) == 1  # not replayed
    (le, ge), (ln, gn) = results
    assert np.all(np.isfinite(ln)) and all(np.all(np.isfinite(g)) for g in gn)
    np.testing.assert_allclose(ln, le, rtol=rtol)
    for a, b in zip(ge, gn):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol * np.abs(a).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_l1_and_huber_kernels_match_numpy_at_their_corners(dtype):
    """The difference losses at d = 0 (L1's gradient is 0 there, as np.sign and PyTorch),
    at |d| = delta (Huber's linear part starts), at +-1000 and at NaN."""
    from gradstep.tracing import native_kernels as K

    a = np.array([0.0, 1.0, -1.0, 0.5, 1000.0, -1000.0, 0.25, np.nan, 2.0], dtype)
    b = np.array([0.0, 0.0, 0.0, 1.5, 0.0, 0.0, 0.0, 0.0, 2.0], dtype)
    n = a.size
    for name, delta in (("l1", None), ("huber", 1.0), ("huber", 0.25)):
        ea, eb = gs.tensor(a, requires_grad=True), gs.tensor(b, requires_grad=True)
        with np.errstate(invalid="ignore"):
            loss = F.l1_loss(ea, eb) if name == "l1" else F.huber_loss(ea, eb, delta=delta)
            loss.backward()
        d, ga, gb = np.empty_like(a), np.empty_like(a), np.empty_like(a)
        extra = () if delta is None else (dtype(delta),)
        value = getattr(K, f"{name}_forward")(a, b, *extra, d)
        getattr(K, f"{name}_backward")(dtype(1) / dtype(n), d, *extra, ga, gb)
        assert np.isnan(value) and np.isnan(loss.item())
        np.testing.assert_array_equal(d, a - b)
        np.testing.assert_allclose(ga, ea.grad.data, rtol=1e-6)
        np.testing.assert_allclose(gb, eb.grad.data, rtol=1e-6)
        finite = ~np.isnan(a)
        with np.errstate(invalid="ignore"):
            u, v = gs.tensor(a[finite]), gs.tensor(b[finite])
            part = F.l1_loss(u, v) if name == "l1" else F.huber_loss(u, v, delta=delta)
        value = getattr(K, f"{name}_forward")(a[finite], b[finite], *extra, d[finite].copy())
        np.testing.assert_allclose(value, part.item(), rtol=1e-6)
        assert ga[0] == 0 and gb[0] == 0  # d = 0: no gradient (L1 as np.sign and PyTorch)


@pytest.mark.parametrize("threads", [2, 1])
def test_auto_replays_a_step_of_large_matrix_products_and_native_insists(threads, monkeypatch):
    """On several BLAS threads backend="auto" leaves steps whose products reach
    AUTO_MAX_PRODUCT (256x256x256 here) to NumPy's BLAS, with the notice naming the product;
    on one thread, and with backend="native", they are compiled."""
    from threadpoolctl import threadpool_limits

    from gradstep.tracing import native

    with threadpool_limits(1):
        assert native._blas_threads() == 1  # what the rule reads follows the user's limit
    monkeypatch.setattr(native, "_blas_threads", lambda: threads)
    assert native.AUTO_MAX_PRODUCT == 256**3
    rng = np.random.default_rng(0)
    x = gs.tensor(rng.standard_normal((256, 256)).astype(np.float32))
    y = gs.tensor(rng.standard_normal((256, 256)).astype(np.float32))
    for backend in ("auto", "native"):
        gs.manual_seed(0)
        model = nn.Linear(256, 256)
        opt = optim.SGD(model.parameters(), lr=0.1)
        step = gs.compile(_step_for(model, opt, F.mse_loss), backend=backend)
        if backend == "auto" and threads > 1:
            with pytest.warns(CompileWarning, match=r"largest matrix product \(16,777,216 mul"):
                step(x, y)
            assert step.native_programs == [] and "NumPy's BLAS at 2 threads" in step.native_notice
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                step(x, y)
            assert len(step.native_programs) == 1 and step.native_notice is None
    # one row less: a product under the limit, compiled by auto at any thread count
    step = gs.compile(_step_for(model, opt, F.mse_loss), backend="auto")
    step(gs.tensor(rng.standard_normal((255, 256)).astype(np.float32)), y[:255])
    assert len(step.native_programs) == 1


def test_an_op_without_a_native_kernel_is_replayed_with_a_notice_naming_it():
    model = _tiny_model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    step = gs.compile(
        _step_for(model, opt, lambda out, y: ((out - y).exp()).mean()), backend="native"
    )
    x, y = (
        gs.tensor(np.ones((5, 3)), dtype=np.float64),
        gs.tensor(np.zeros((5, 2)), dtype=np.float64),
    )
    with pytest.warns(CompileWarning, match=r"no native step: op Sub has no native kernel") as w:
        step(x, y)
    assert w[0].filename == __file__  # the notice points at the user's line
    assert step.native_programs == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        step(x, y)  # replayed, silently
    assert step.replays == 1 and native_program(step) is None


def test_a_bad_label_is_refused_as_in_eager_and_changes_nothing():
    model = _tiny_model()
    opt = optim.Adam(model.parameters(), lr=0.1)
    step = gs.compile(_step_for(model, opt, F.cross_entropy), backend="native")
    x = gs.tensor(np.ones((4, 3)), dtype=np.float64)
    step(x, gs.tensor(np.array([0, 1, 1, 0])))
    step(x, gs.tensor(np.array([0, 1, 1, 0])))
    before = [p.data.copy() for p in model.parameters()]
    state = opt.state_dict()["state"][0]["step"]
    with pytest.raises(ValueError, match=r"label 7 at index 2 is outside \[0, 2\)"):
        step(x, gs.tensor(np.array([0, 1, 7, 0])))
    assert all(np.array_equal(a, p.data) for a, p in zip(before, model.parameters()))
    assert opt.state_dict()["state"][0]["step"] in (state, state + 1)  # counted, as eager


def test_a_scheduler_and_a_loaded_state_are_followed():
    def run(backend):
        model = _tiny_model()
        opt = optim.Adam(model.parameters(), lr=0.05)
        sched = optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
        inner = _step_for(model, opt, F.mse_loss)

        def step(x, y):
            loss = inner(x, y)
            sched.step()
            return loss

        if backend == "native":
            step = gs.compile(step, backend="native")
        rng = np.random.default_rng(0)
        x = gs.tensor(rng.standard_normal((8, 3)), dtype=np.float64)
        y = gs.tensor(rng.standard_normal((8, 2)), dtype=np.float64)
        losses = [step(x, y).item() for _ in range(5)]
        saved = opt.state_dict()
        losses += [step(x, y).item() for _ in range(4)]
        opt.load_state_dict(saved)  # back to step 5's state: the native step follows it
        losses += [step(x, y).item() for _ in range(4)]
        return losses, opt.param_groups[0]["lr"]

    (le, lr_e), (ln, lr_n) = run("eager"), run("native")
    assert lr_e == lr_n == 0.05 * 0.5**4
    np.testing.assert_allclose(ln, le, rtol=1e-12)


def test_returned_outputs_are_copies_and_grads_are_shown():
    model = _tiny_model()
    opt = optim.SGD(model.parameters(), lr=0.1)

    def step(x, y):
        opt.zero_grad()
        out = model(x)
        loss = F.mse_loss(out, y)
        loss.backward()
        opt.step()
        return loss, out

    step = gs.compile(step, backend="native")
    x, y = (
        gs.tensor(np.ones((5, 3)), dtype=np.float64),
        gs.tensor(np.zeros((5, 2)), dtype=np.float64),
    )
    step(x, y)
    _, out1 = step(x, y)
    kept = out1.data.copy()
    loss2, out2 = step(x, y)
    assert np.array_equal(out1.data, kept)  # not overwritten by the next step
    assert not np.array_equal(out2.data, kept)
    assert loss2.shape == () and loss2.dtype == np.float64 and not loss2.requires_grad
    w = model[0].weight
    assert w.grad is not None and w.grad.shape == w.shape and np.abs(w.grad.data).sum() > 0


def test_the_compiled_step_is_cached_on_disk_for_the_next_process(tmp_path):
    code = (
        "import sys; sys.path.insert(0, 'benchmarks'); import bench; import gc\n"
        "case = {**bench.CASES['a'], 'batch': 8}\n"
        "s = bench.make_steps(case, systems=('native',))['native']; s(); s()\n"
        "cs = [o for o in gc.get_objects() if type(o).__name__ == 'CompiledStep'][0]\n"
        "(p,), = cs._programs.values()\n"
        "print(p.native.cached, round(cs.compile_seconds[0], 3))\n"
    )
    env = {**os.environ, "GRADSTEP_CACHE_DIR": str(tmp_path)}
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True
        )
        for _ in range(2)
    ]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr[-2000:]
    first, second = (r.stdout.split() for r in runs)
    # the first process had a child compile it and loaded the result, as the second does
    assert first[0] == "True" and second[0] == "True"
    assert float(second[1]) < float(first[1])
    files = os.listdir(tmp_path / "native")
    assert len([f for f in files if f.startswith("step_") and f.endswith(".py")]) == 1
    assert native_mod.cache_dir().endswith("native")


_SAME_BITS = """
import hashlib, numpy as np, gradstep as gs
from gradstep import nn, optim
from gradstep import functional as F
rng = np.random.default_rng(0)
x = gs.tensor(rng.standard_normal((32, 3)), dtype=np.float64)
y = gs.tensor(rng.standard_normal((32, 1)), dtype=np.float64)
gs.manual_seed(0)
model = nn.mlp(3, [16], 1, "sigmoid").to(np.float64)
opt = optim.SGD(model.parameters(), lr=0.1)
def step(x, y):
    opt.zero_grad(); loss = F.mse_loss(model(x), y); loss.backward(); return loss
s = gs.compile(step, backend="native")
for _ in range(3):
    s(x, y)
    opt.step()
print(hashlib.sha256(b"".join(p.data.tobytes() + p.grad.data.tobytes()
                             for p in model.parameters())).hexdigest())
"""


def test_a_process_that_compiles_a_step_computes_the_bits_of_one_that_loads_it(tmp_path):
    """The first process meets the step first (fresh numba and step caches), the second loads
    it from disk: the same bits. Compiled by the process itself, the code rounded differently
    from the same code loaded from the cache (the kernels' fused multiply-adds), which broke
    bit-identical resume; so a child process compiles it and every process loads it."""
    env = {
        **os.environ,
        "GRADSTEP_CACHE_DIR": str(tmp_path / "steps"),
        "NUMBA_CACHE_DIR": str(tmp_path / "numba"),
    }
    runs = [
        subprocess.run([sys.executable, "-c", _SAME_BITS], env=env, capture_output=True, text=True)
        for _ in range(2)
    ]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr[-2000:]
    assert runs[0].stdout == runs[1].stdout and len(runs[0].stdout.strip()) == 64


def test_a_changed_shape_reuses_the_compiled_step_and_a_changed_structure_does_not(
    tmp_path, monkeypatch
):
    """Sizes and offsets are arguments of the compiled function (native_program.generic): a
    new batch size or width is a new trace with its own numbers, and the same compiled code
    (one source file, nothing compiled again); another activation is another source."""
    monkeypatch.setenv("GRADSTEP_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(native_program_mod, "_LOADED", {})  # as a fresh process
    rng = np.random.default_rng(0)
    losses = {}
    for act, width, n in (("tanh", 4, 4), ("tanh", 4, 6), ("tanh", 9, 5), ("sigmoid", 4, 4)):
        x = gs.tensor(rng.standard_normal((n, 3)), dtype=np.float64)
        y = gs.tensor(rng.standard_normal((n, 2)), dtype=np.float64)
        results = []
        for backend in ("eager", "native"):
            gs.manual_seed(0)
            model = nn.mlp(3, [width], 2, act).to(np.float64)
            opt = optim.SGD(model.parameters(), lr=0.1)
            step = _step_for(model, opt, F.mse_loss)
            if backend == "native":
                step = gs.compile(step, backend="native")
            results.append([step(x, y).item() for _ in range(3)])
        np.testing.assert_allclose(results[1], results[0], rtol=1e-12)
        (program,) = step.native_programs
        assert list(program.dims[:4]) != [] and f"(({n}, {width}))" in program.source
        losses[(act, width, n)] = program
    files = sorted(f for f in os.listdir(tmp_path / "native") if f.endswith(".py"))
    assert len(files) == 2  # tanh (three shapes) and sigmoid
    tanh = [p for k, p in losses.items() if k[0] == "tanh"]
    assert len({p.compiled_source for p in tanh}) == 1 and len({p.source for p in tanh}) == 3
    assert len({id(p._fn) for p in tanh}) == 1  # one compiled function for the three


def test_the_generated_source_names_values_after_their_ops_and_parameters():
    case = {**bench.CASES["a"], "batch": 8}
    *_, step, _ = train(case, "native", 3, np.float32)
    (program,) = step.native_programs  # the public view of what native_program() reads
    assert program is native_program(step)
    src = program.source
    for name in ("p_0_weight", "p_2_bias", "linear1", "sigmoid1", "g_linear2", "g_p_0_weight"):
        assert re.search(rf"\b{name}\b", src), name  # the whole name, no suffix
    assert "K1" not in src  # no anonymous constants


def test_native_without_numba_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(native_mod, "available", lambda: False)
    with pytest.raises(ImportError, match=r"pip install 'gradstep\[native\]'"):
        gs.compile(lambda x: x, backend="native")
    with pytest.raises(ValueError, match="backend must be one of"):
        gs.compile(lambda x: x, backend="fast")


@pytest.mark.parametrize("width, one_thread", [(4, False), (16, True), (512, False)])
def test_small_matrix_products_run_on_one_blas_thread_and_leave_the_setting(width, one_thread):
    """4: loops only; 16: BLAS on one thread; 512 (134M multiply-adds): BLAS on as many
    threads as NumPy's BLAS has at the call (checked in the large-products test below)."""
    model = nn.mlp(width, [width], 1, "relu").to(np.float64)
    opt = optim.SGD(model.parameters(), lr=1e-3)
    step = gs.compile(_step_for(model, opt, F.mse_loss), backend="native")
    x = gs.tensor(np.ones((128, width)), dtype=np.float64)
    y = gs.tensor(np.zeros((128, 1)), dtype=np.float64)
    blas = native_mod._numba_blas()
    before = blas.get_num_threads()
    step(x, y)
    step(x, y)
    program = native_program(step)
    assert program.largest_matmul == 128 * width * width  # 4: loops only, no BLAS call
    assert ("set_num_threads(1)" in program.caller_source) == one_thread
    assert blas.get_num_threads() == before


def test_large_products_follow_numpys_blas_thread_count_at_each_call(monkeypatch):
    """A threadpool_limits entered before numba's BLAS (SciPy's) was loaded reaches NumPy's
    BLAS only; a native step's large products follow NumPy's count, read at each call."""
    from gradstep.tracing import native_program as np_mod

    numpy_blas, numba_blas = np_mod._numpy_blas(), native_mod._numba_blas()
    assert numpy_blas is not None and numba_blas is not None
    seen = []
    real = numba_blas.set_num_threads
    monkeypatch.setattr(numba_blas, "set_num_threads", lambda n: seen.append(n) or real(n))
    model = nn.mlp(512, [512], 1, "relu").to(np.float64)
    opt = optim.SGD(model.parameters(), lr=1e-3)
    step = gs.compile(_step_for(model, opt, F.mse_loss), backend="native")
    x = gs.tensor(np.ones((128, 512)), dtype=np.float64)
    y = gs.tensor(np.zeros((128, 1)), dtype=np.float64)
    step(x, y)  # the trace (eager); native from the next call on
    before_numpy, before_numba = numpy_blas.get_num_threads(), numba_blas.get_num_threads()
    try:
        for n in (1, 2):
            numpy_blas.set_num_threads(n)
            real(3 - n)  # numba's BLAS set otherwise: the call must not keep it
            seen.clear()
            step(x, y)
            assert seen[0] == n and seen[-1] == 3 - n  # n for the call, restored after
    finally:
        numpy_blas.set_num_threads(before_numpy)
        real(before_numba)


def test_the_float32_sigmoid_kernel_is_within_3_ulp_of_numpys_everywhere():
    from gradstep.ops.activation import stable_sigmoid
    from gradstep.tracing import native_kernels as K

    x = np.concatenate(
        [
            np.linspace(-120, 120, 200_001, dtype=np.float32),
            np.float32([np.nan, np.inf, -np.inf, 0.0, -0.0, 87.0, -87.0, -100.0, 1e-30]),
        ]
    ).reshape(-1, 1)
    y, tmp = np.empty_like(x), np.empty_like(x)
    K.sigmoid_forward_f32(x, y, tmp)
    ref = stable_sigmoid(x)
    same_nan = np.isnan(y) == np.isnan(ref)
    assert same_nan.all()
    ok = ~np.isnan(ref)
    ulp = np.abs(y[ok].view(np.int32).astype(np.int64) - ref[ok].view(np.int32))
    assert ulp.max() <= 3
    assert y[-2, 0] == ref[-2, 0] > 0  # sigmoid(-100) = 3.7e-44, a subnormal, not 0


@pytest.mark.parametrize("seed", range(3))
def test_the_matrix_product_kernels_equal_numpy_on_every_shape(seed):
    """Loops below BLAS_MIN multiply-adds (both loop orders of matmul_tn), BLAS above."""
    from gradstep.tracing import native_kernels as K

    rng = np.random.default_rng(seed)
    shapes = [(1, 1, 1), (32, 1, 16), (32, 16, 1), (7, 5, 3), (256, 117, 64), (3, 40, 200)]
    shapes += [tuple(rng.integers(1, 40, 3)) for _ in range(10)]
    for n, k, m in shapes:
        a, b = rng.standard_normal((n, k)), rng.standard_normal((m, k))
        g = rng.standard_normal((n, m))
        out = np.empty((n, m))
        K.matmul_nt(a, b, out)
        np.testing.assert_allclose(out, a @ b.T, rtol=1e-12, atol=1e-12)
        out = np.empty((n, k))
        K.matmul_nn(g, b, out)
        np.testing.assert_allclose(out, g @ b, rtol=1e-12, atol=1e-12)
        out = np.empty((m, k))
        K.matmul_tn(g, a, out)
        np.testing.assert_allclose(out, g.T @ a, rtol=1e-12, atol=1e-12)


def test_a_step_numba_cannot_compile_is_replayed_with_a_notice(monkeypatch):
    def refuse(self, args, kwargs):
        raise RuntimeError("Failed in nopython mode pipeline (step: nopython frontend)\nmore")

    monkeypatch.setattr(native_mod.NativeProgram, "compile_now", refuse)
    model = _tiny_model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    step = gs.compile(_step_for(model, opt, F.mse_loss), backend="native")
    x, y = (
        gs.tensor(np.ones((5, 3)), dtype=np.float64),
        gs.tensor(np.zeros((5, 2)), dtype=np.float64),
    )
    with pytest.warns(CompileWarning, match=r"compiling it failed \(RuntimeError: Failed in"):
        step(x, y)
    step(x, y)
    assert step.replays == 1 and native_program(step) is None


# --- what a review of the native backend found (each failed before its fix) ----------------------
def _pair(make_model, make_opt):
    """The same model and optimizer twice: one to run eagerly, one native."""
    gs.manual_seed(3)
    a = make_model()
    b = copy.deepcopy(a)
    return (a, make_opt(a)), (b, make_opt(b))


def _close(xs, ys, rtol=1e-12):
    for x, y in zip(xs, ys):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * max(np.abs(y).max(), 1e-300))


def T(a):
    return gs.tensor(a, dtype=np.float64)


def test_two_modules_called_directly_keep_their_own_weights():
    """Both are named 'weight' in their own module: the native names must still differ."""

    def make():
        return nn.ModuleList([nn.Linear(3, 4), nn.Linear(4, 2)]).to(np.float64)

    (ea, eo), (na, no) = _pair(make, lambda m: optim.SGD(m.parameters(), lr=0.1))

    def stepper(m, o):  # two modules called directly, both with a "weight"
        return _step_for(lambda x: m[1](F.tanh(m[0](x))), o, F.mse_loss)

    eager, native = stepper(ea, eo), gs.compile(stepper(na, no), backend="native")
    rng = np.random.default_rng(0)
    for _ in range(4):
        x, y = T(rng.normal(size=(5, 3))), T(rng.normal(size=(5, 2)))
        np.testing.assert_allclose(native(x, y).item(), eager(x, y).item(), rtol=1e-12)
    assert native_program(native) is not None
    _close([p.data for p in na.parameters()], [p.data for p in ea.parameters()])


@pytest.mark.parametrize("how", ["keywords", "object", "subclass"])
def test_calls_the_fast_guard_cannot_check_still_run_the_step(how):
    class Batch(gs.Tensor):
        pass

    (ea, eo), (na, no) = _pair(_tiny_model, lambda m: optim.SGD(m.parameters(), lr=0.1))

    eager = _step_for(ea, eo, F.mse_loss)
    native = gs.compile(_step_for(na, no, F.mse_loss), backend="native")
    rng = np.random.default_rng(0)
    cfg = {"any": "object"}
    for _ in range(4):
        x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
        if how == "keywords":
            got, want = native(T(x), y=T(y)), eager(T(x), y=T(y))
        elif how == "object":
            got, want = native(T(x), T(y), cfg), eager(T(x), T(y), cfg)
        else:
            got, want = native(Batch(x, dtype=np.float64), T(y)), eager(T(x), T(y))
        assert isinstance(got, gs.Tensor)
        np.testing.assert_allclose(got.item(), want.item(), rtol=1e-12)
    assert native.replays == 3


@pytest.mark.parametrize("opt_name", ["momentum", "adam"])
@pytest.mark.parametrize("how", ["resume", "reset"])
def test_a_loaded_optimizer_state_is_followed(opt_name, how):
    make_opt = {
        "momentum": lambda m: optim.SGD(m.parameters(), lr=0.1, momentum=0.9),
        "adam": lambda m: optim.Adam(m.parameters(), lr=0.01),
    }[opt_name]
    (ea, eo), (na, no) = _pair(_tiny_model, make_opt)
    eager, native = (
        _step_for(ea, eo, F.mse_loss),
        gs.compile(_step_for(na, no, F.mse_loss), backend="native"),
    )
    rng = np.random.default_rng(1)
    for i in range(10):
        x, y = T(rng.normal(size=(5, 3))), T(rng.normal(size=(5, 2)))
        if i == 2:
            saved = copy.deepcopy(eo.state_dict())
        if i == 5:
            for o in (eo, no):
                sd = copy.deepcopy(saved) if how == "resume" else {**o.state_dict(), "state": {}}
                o.load_state_dict(sd)
        np.testing.assert_allclose(native(x, y).item(), eager(x, y).item(), rtol=1e-12)
    _close([p.data for p in na.parameters()], [p.data for p in ea.parameters()])


@pytest.mark.parametrize("first", [True, False])
def test_a_refused_label_leaves_the_optimizer_state_as_eager_does(first):
    (ea, eo), (na, no) = _pair(_tiny_model, lambda m: optim.Adam(m.parameters(), lr=0.01))
    eager = _step_for(ea, eo, F.cross_entropy)
    native = gs.compile(_step_for(na, no, F.cross_entropy), backend="native")
    x, good, bad = (
        T(np.ones((4, 3))),
        gs.tensor(np.array([0, 1, 1, 0])),
        gs.tensor(np.array([0, 7, 1, 0])),
    )
    for step in (eager, native):
        step(x, good)  # the trace
        if not first:
            step(x, good)
    for step in (eager, native):
        with pytest.raises(ValueError, match="label 7 at index 1"):
            step(x, bad)
    se, sn = eo.state_dict()["state"], no.state_dict()["state"]
    assert se.keys() == sn.keys() and all(se[i]["step"] == sn[i]["step"] for i in se)
    for step in (eager, native):
        step(x, good)
    _close([p.data for p in na.parameters()], [p.data for p in ea.parameters()])


def test_a_sliced_batch_after_a_contiguous_one_is_copied_not_refused():
    (ea, eo), (na, no) = _pair(_tiny_model, lambda m: optim.SGD(m.parameters(), lr=0.1))
    eager, native = (
        _step_for(ea, eo, F.mse_loss),
        gs.compile(_step_for(na, no, F.mse_loss), backend="native"),
    )
    data = T(np.random.default_rng(0).normal(size=(5, 6)))
    x, y = data[:, :3], data[:, 3:5]
    assert not x.data.flags.c_contiguous
    for args in [(T(x.data.copy()), T(y.data.copy()))] * 2 + [(x, y)] * 2:
        np.testing.assert_allclose(native(*args).item(), eager(*args).item(), rtol=1e-12)
    assert native.replays == 3


def test_two_updates_in_one_step_are_replayed_with_a_notice():
    (ea, eo), (na, no) = _pair(_tiny_model, lambda m: optim.Adam(m.parameters(), lr=0.01))

    eager = _step_for(ea, eo, F.mse_loss, updates=2)
    native = gs.compile(_step_for(na, no, F.mse_loss, updates=2), backend="native")
    x, y = T(np.ones((5, 3))), T(np.zeros((5, 2)))
    with pytest.warns(CompileWarning, match=r"optimizer.step\(\) twice in one step"):
        native(x, y)
    eager(x, y)
    for _ in range(3):
        np.testing.assert_allclose(native(x, y).item(), eager(x, y).item(), rtol=1e-12)
