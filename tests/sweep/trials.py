"""Train functions for the sweep tests (module level, so worker processes can run them)."""

from __future__ import annotations

import os

import numpy as np


def quadratic(config, seed):
    """A metric that depends on the config and, a little, on the seed."""
    noise = np.random.default_rng(seed).standard_normal()
    return {"val_loss": (config["lr"] - 0.01) ** 2 + 1e-6 * noise**2, "seed_echo": seed}


def logged(config, seed, log_path):
    """As quadratic, and appends "config seed" to the file ``log_path`` (the sweep's data)."""
    with open(log_path, "a") as f:
        f.write(f"{config['lr']} {seed}\n")
    return quadratic(config, seed)


def flaky(config, seed):
    """Fails for lr 0.1, reports a non-finite metric for lr 1, else as quadratic."""
    if config["lr"] == 0.1:
        raise RuntimeError("lr 0.1 is refused by this function")
    if config["lr"] == 1:
        return {"val_loss": float("nan")}
    return quadratic(config, seed)


def crash_once(config, seed, folder):
    """Kills its worker process the first time each trial runs, succeeds the second time."""
    mark = os.path.join(folder, f"{config['lr']}-{seed}")
    if not os.path.exists(mark):
        open(mark, "w").close()
        os._exit(1)
    return quadratic(config, seed)


def crash_always(config, seed):
    os._exit(1)


def optuna_objective(config, seed):
    x = config["x"]
    return {"loss": (x - 0.3) ** 2 + 0.01 * config.get("k", 0) + 1e-3 * seed}
