"""The benchmark script cannot rot: a tiny run end to end, and its hand-written floor is the
same computation as PyTorch's (float64). No timing is asserted."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import bench  # noqa: E402
from handwritten import HandMLP  # noqa: E402


def test_tiny_benchmark_run_writes_every_field(tmp_path):
    out = tmp_path / "r.json"
    bench.main(["--tiny", "--threads", "1", "--out", str(out)])
    result = json.loads(out.read_text())
    assert {r["case"] for r in result["steps"]} == {"a", "b", "c", "d"}
    for r in result["steps"]:
        for system in ("gradstep", "pytorch", "numpy"):
            assert r[f"{system}_steps_per_s"] > 0
    plain = [r for r in result["steps"] if "numpy_plain_steps_per_s" in r]
    assert [r["case"] for r in plain] == ["a"]  # the one case with a sigmoid
    assert "1 / (1 + exp(-x))" in bench.plain_sigmoid_note(result)
    assert result["surface"]["speedup"] > 0 and result["fit"]["gradstep_s"] > 0
    assert result["environment"]["blas"]


def test_handwritten_step_equals_pytorch_in_float64():
    for case in bench.CASES.values():
        rng = np.random.default_rng(0)
        sizes = [min(s, 24) for s in case["sizes"]]
        x = rng.standard_normal((8, sizes[0]))
        y = rng.standard_normal((8, 1)) if case["loss"] == "mse" else rng.integers(0, sizes[-1], 8)
        hand = HandMLP(
            sizes, case["act"], case["loss"], case["opt"], case["lr"], rng, dtype=np.float64
        )
        model = bench.torch_mlp(hand, case["act"], dtype=torch.float64)
        opt = bench.torch_optimizer(case["opt"], model.parameters(), case["lr"])
        lf = torch.nn.MSELoss() if case["loss"] == "mse" else torch.nn.CrossEntropyLoss()
        for _ in range(3):
            ours = hand.step(x, y)
            opt.zero_grad()
            loss = lf(model(torch.from_numpy(x)), torch.from_numpy(y))
            loss.backward()
            opt.step()
            np.testing.assert_allclose(ours, loss.item(), rtol=1e-10)
        np.testing.assert_allclose(hand.W[0], model[0].weight.detach().numpy(), rtol=1e-9)


def test_plain_sigmoid_floor_trains_the_same_model_in_float64():
    """The cheap-sigmoid floor is timed as "the same step with another sigmoid": it must
    compute the same losses and weights up to rounding (in float64, away from overflow)."""
    case = bench.CASES["a"]
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((32, 1)), rng.standard_normal((32, 1))
    split = HandMLP(case["sizes"], "sigmoid", "mse", "sgd", 0.1, rng, dtype=np.float64)
    plain = HandMLP(case["sizes"], "sigmoid", "mse", "sgd", 0.1, rng, dtype=np.float64, plain=True)
    plain.load(split.W, split.b)
    for _ in range(5):
        np.testing.assert_allclose(plain.step(x, y), split.step(x, y), rtol=1e-13)
    np.testing.assert_allclose(plain.flat, split.flat, rtol=1e-12)


@pytest.mark.parametrize("key", ["a", "b", "c", "d"])
def test_handwritten_step_gives_gradsteps_bits_in_float32(key):
    """The floor computes gradstep's function operation for operation, so the ratio between
    them is overhead only: weights, optimizer state and losses equal bit for bit, eager and
    compiled, over a few steps."""
    case = dict(bench.CASES[key])
    case["sizes"] = [min(s, 40) for s in case["sizes"]]
    case["batch"] = 16
    steps = bench.make_steps(case, systems=("numpy", "gradstep", "compiled"))
    closures = {name: _closure(fn) for name, fn in steps.items()}
    for _ in range(4):
        losses = {name: fn() for name, fn in steps.items()}
        assert (
            losses["numpy"] == float(losses["gradstep"].item()) == float(losses["compiled"].item())
        )
    hand = closures["numpy"]["hand"]
    for name in ("gradstep", "compiled"):
        model = closures[name]["model"]
        for k, (w, b) in enumerate(zip(hand.W, hand.b)):
            assert model[2 * k].weight.data.tobytes() == w.tobytes(), (name, k)
            assert model[2 * k].bias.data.tobytes() == b.tobytes(), (name, k)


def _closure(fn) -> dict:
    """The variables a benchmark step closes over, by name (the model, the floor's object)."""
    out = {}
    while fn is not None:
        cells = dict(zip(fn.__code__.co_freevars, fn.__closure__ or ()))
        out.update({k: c.cell_contents for k, c in cells.items()})
        fn = out.pop("step", None) if "step" in cells else None
        if fn is not None and not hasattr(fn, "__code__"):
            fn = getattr(fn, "fn", None)  # a CompiledStep: the step function inside
    return out


def test_lanczos_benchmark_finds_the_same_eigenvalues_as_pytorch():
    import lanczos

    result = lanczos.main(["--tiny", "--rounds", "1", "--k", "3"])
    assert result["eigenvalue_difference"] < 1e-9
    assert result["hvp_calls"]["gradstep"] > 3 and result["gradstep_s"] > 0


def test_tiny_sweep_benchmark_compares_three_executors(tmp_path):
    import sweep as sweep_bench

    out = tmp_path / "s.json"
    r = sweep_bench.main(["--tiny", "--out", str(out)])
    assert json.loads(out.read_text())["trials"] == r["trials"] == 4
    assert set(r["seconds_median"]) == set(sweep_bench.EXECUTORS)
    assert r["metrics_identical"] is True  # the same numbers whoever ran the trials
    assert all(v > 0 for v in r["seconds_median"].values())
    assert "speed-up vs serial" in sweep_bench.table(r)


@pytest.mark.parametrize("key", ["a", "b", "c", "d"])
def test_jax_step_trains_the_same_model_as_pytorch_in_float64(key):
    """The JAX column times the same step: losses and weights equal PyTorch's over 3 steps."""
    from jax_step import jax_step  # JAX: in the test extra, an optional benchmark dependency

    case = dict(bench.CASES[key])
    sizes = [min(s, 24) for s in case["sizes"]]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, sizes[0]))
    y = rng.standard_normal((8, 1)) if case["loss"] == "mse" else rng.integers(0, sizes[-1], 8)
    hand = HandMLP(sizes, case["act"], case["loss"], case["opt"], case["lr"], rng, dtype=np.float64)
    model = bench.torch_mlp(hand, case["act"], dtype=torch.float64)
    opt = bench.torch_optimizer(case["opt"], model.parameters(), case["lr"])
    lf = torch.nn.MSELoss() if case["loss"] == "mse" else torch.nn.CrossEntropyLoss()
    step = jax_step(case, hand.W, hand.b, x, y, dtype=np.float64)
    for _ in range(3):
        ours = float(step())
        opt.zero_grad()
        loss = lf(model(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        opt.step()
        np.testing.assert_allclose(ours, loss.item(), rtol=1e-10)
    W, _ = step.params()
    np.testing.assert_allclose(W[0], model[0].weight.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_tiny_run_adds_jax_and_the_other_coretype_table(tmp_path):
    out = tmp_path / "r.json"
    result = bench.main(["--tiny", "--threads", "1", "--coretype-row", "--out", str(out)])
    assert all(r["jax_steps_per_s"] > 0 and r["compiled_vs_jax"] > 0 for r in result["steps"])
    assert all(r["native_steps_per_s"] > 0 and r["native_vs_jax"] > 0 for r in result["steps"])
    assert all(r["native_compile_s"] >= 0 for r in result["steps"])
    other = result["steps_coretype_other"]
    assert [r["case"] for r in other["steps"]] == ["a", "b", "c", "d"]
    assert other["setting"] == ("unset" if os.environ.get("OPENBLAS_CORETYPE") else "Haswell")
    assert other["blas"]
    md = tmp_path / "perf.md"
    bench.write_markdown(result, str(md))
    text = md.read_text()
    assert "JAX jit" in text and f"OPENBLAS_CORETYPE={other['setting']}" in text
    assert "gradstep native" in text and "(a) native >= 5x hand NumPy" in text


def test_fit_compile_benchmark_smoke_run_names_what_ran():
    import fit_compile

    rows = fit_compile.main(["--tiny", "--rounds", "1", "--threads", "1", "--cases", "ac"])
    assert [r["case"] for r in rows] == ["a", "c"]
    assert all(r["replay"] > 0 and r["native"] > 0 and r["default"] > 0 for r in rows)
    # at 1 thread the default is native at both (at 2, (c)'s products would be left to NumPy)
    assert [r["default_runs"] for r in rows] == ["native", "native"]
