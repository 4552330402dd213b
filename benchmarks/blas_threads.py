"""Where a second BLAS thread starts to pay: one training step's matrix products at 1 and 2
threads, alternating blocks in one process (the machine is shared; only ratios count).

    python benchmarks/blas_threads.py

Prints multiply-adds per product and the 2-thread / 1-thread time ratio; gradstep train uses
one thread below the crossover (``gradstep.train.tabular.SMALL_GEMM``).
"""

from __future__ import annotations

import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits


def step(x, w):
    h = x @ w
    return h.T @ x  # forward product and the weight-gradient product of one layer


def timed(x, w, threads, reps):
    with threadpool_limits(limits=threads):
        t = time.perf_counter()
        for _ in range(reps):
            step(x, w)
        return (time.perf_counter() - t) / reps


def main() -> None:
    rng = np.random.default_rng(0)
    info = threadpool_info()
    print(f"BLAS: {[(i.get('internal_api'), i.get('architecture')) for i in info]}")
    print("| batch x width x width | multiply-adds | 1 thread (us) | 2 threads (us) | 2T/1T |")
    print("|---|---|---|---|---|")
    for batch, width in [
        (32, 16),
        (32, 64),
        (256, 64),
        (512, 64),
        (512, 128),
        (1024, 128),
        (1024, 256),
        (512, 512),
        (1024, 512),
        (1024, 1024),
    ]:
        x = rng.standard_normal((batch, width)).astype(np.float32)
        w = rng.standard_normal((width, width)).astype(np.float32)
        reps = max(3, int(2e8 / (batch * width * width)))
        one, two = [], []
        for _ in range(5):
            one.append(timed(x, w, 1, reps))
            two.append(timed(x, w, 2, reps))
        a, b = np.median(one), np.median(two)
        print(
            f"| {batch} x {width} x {width} | {batch * width * width:,} | {a * 1e6:.1f} | "
            f"{b * 1e6:.1f} | {b / a:.2f} |"
        )


if __name__ == "__main__":
    main()
