"""Hessian-vector products and Lanczos extreme eigenvalues: gradstep against PyTorch.

    python benchmarks/lanczos.py             # P = 93,901 (10-300-300-1 ReLU, 256 points)
    python benchmarks/lanczos.py --tiny      # a smoke run

The same ``scipy.sparse.linalg.eigsh`` runs on a LinearOperator whose matvec is gradstep's
``LossFunction.hvp`` (exact gradients differenced with the ReLU pattern frozen) or PyTorch's
``torch.autograd.functional.hvp`` (double backward), on the same weights, data and start
vector, at 1 thread. Systems alternate; the figure is the median of the rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh
from threadpoolctl import threadpool_limits

import gradstep as gs
from gradstep import nn
from gradstep.lab.network_hessian import LossFunction


def _torch_hvp(model, X, y):
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    shapes = [t.shape for m in layers for t in (m.weight.data, m.bias.data)]
    sizes = [int(np.prod(s)) for s in shapes]
    theta = torch.from_numpy(
        np.concatenate([t.ravel() for m in layers for t in (m.weight.data, m.bias.data)])
    )
    x, t = torch.from_numpy(X), torch.from_numpy(y)

    def loss(flat):
        parts, start = [], 0
        for s, n in zip(shapes, sizes):
            parts.append(flat[start : start + n].reshape(s))
            start += n
        h = x
        for i in range(0, len(parts), 2):
            h = h @ parts[i].T + parts[i + 1]
            if i + 2 < len(parts):
                h = torch.relu(h)
        return ((h - t) ** 2).mean()

    def matvec(v):
        v = torch.from_numpy(np.ascontiguousarray(v, np.float64).ravel())
        return torch.autograd.functional.hvp(loss, theta, v)[1].numpy()

    return matvec


def _lanczos(matvec, size, k, v0):
    counter = {"n": 0}

    def counted(v):
        counter["n"] += 1
        return matvec(v)

    op = LinearOperator((size, size), matvec=counted, dtype=np.float64)
    started = time.perf_counter()
    low = eigsh(op, k, which="SA", v0=v0)
    return time.perf_counter() - started, low[0], counter["n"]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--k", type=int, default=6)
    args = parser.parse_args(argv)
    sizes, n = ([4, 16, 16, 1], 32) if args.tiny else ([10, 300, 300, 1], 256)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, sizes[0]))
    y = np.sin(X.sum(axis=1, keepdims=True))
    gs.manual_seed(0)
    model = nn.mlp(sizes[0], sizes[1:-1], sizes[-1]).double()
    f = LossFunction(model, nn.MSELoss(), X, y)
    th = _torch_hvp(model, X, y)
    v0 = rng.standard_normal(f.size)
    times = {"gradstep": [], "pytorch": []}
    values = {}
    with threadpool_limits(1):
        torch.set_num_threads(1)
        for _ in range(args.rounds):
            for name, mv in (("gradstep", f.hvp), ("pytorch", th)):
                seconds, eig, calls = _lanczos(mv, f.size, args.k, v0)
                times[name].append(seconds)
                values[name] = (eig, calls)
    result = {
        "parameters": f.size,
        "points": n,
        "k": args.k,
        "gradstep_s": statistics.median(times["gradstep"]),
        "pytorch_s": statistics.median(times["pytorch"]),
        "hvp_calls": {k: v[1] for k, v in values.items()},
        "eigenvalue_difference": float(
            np.max(np.abs(np.sort(values["gradstep"][0]) - np.sort(values["pytorch"][0])))
        ),
        "smallest": np.sort(values["gradstep"][0]).tolist(),
    }
    result["ratio"] = result["gradstep_s"] / result["pytorch_s"]
    print(
        f"P = {f.size:,}, {n} points, the {args.k} smallest eigenvalues by eigsh at 1 thread: "
        f"gradstep {result['gradstep_s']:.2f} s, PyTorch {result['pytorch_s']:.2f} s "
        f"(ratio {result['ratio']:.2f}; {result['hvp_calls']} Hessian-vector products); "
        f"eigenvalues differ by {result['eigenvalue_difference']:.1e}"
    )
    return result


if __name__ == "__main__":
    main()
