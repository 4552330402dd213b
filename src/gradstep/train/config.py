"""The options of a training run on a table (``gradstep train``'s options and ``--config`` keys)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from gradstep.data.encoder import POLICIES
from gradstep.errors import InputError

LOSSES = ("mse", "mae", "huber", "ce")
OPTIMIZERS = ("sgd", "adam")
MISSING = POLICIES  # what a missing cell does: one list, the encoder's


@dataclass
class TrainConfig:
    """Every choice of a training run; also the keys a ``--config run.toml`` may set."""

    target: str = ""
    task: str = "auto"  # auto | regression | classification
    features: list = field(default_factory=list)  # empty: every column but the target
    hidden: list = field(default_factory=lambda: [64, 32])
    activation: str = "relu"
    loss: str = "auto"  # auto | mse | mae | huber | ce
    optimizer: str = "adam"
    lr: float = 1e-3
    batch_size: int | str = "auto"  # auto: 32 up to 20,000 training rows, larger above
    epochs: int = 200
    val_fraction: float = 0.2
    patience: int | str = "auto"  # auto: 20 epochs up to 20,000 training rows, fewer above
    seed: int = 0
    missing: str = "impute"  # impute | drop | error
    class_weight: str = "none"  # none | balanced
    sep: str = ""  # the CSV's delimiter; empty: sniffed
    decimal: str = ""  # empty: "," for a non-comma file whose first lines show decimal commas
    thousands: str = ""
    threads: int = 0  # BLAS threads; 0: chosen from the model's size

    @classmethod
    def from_dict(cls, d: dict, source: str) -> TrainConfig:
        known = {f.name: f for f in dataclasses.fields(cls)}
        out = cls()
        for key, value in d.items():
            if key not in known:
                raise InputError(f"{source}: unknown key '{key}' (known: {', '.join(known)})")
            setattr(out, key, value)
        return out

    def validate(self, source: str = "options", require_target: bool = True) -> TrainConfig:
        def bad(key, why):
            raise InputError(f"{source}: '{key}' {why}")

        checks = [
            (
                "target",
                isinstance(self.target, str) and (self.target != "" or not require_target),
                "must name a column",
            ),
            (
                "task",
                self.task in ("auto", "regression", "classification"),
                "must be auto, regression or classification",
            ),
            (
                "activation",
                self.activation in ("relu", "sigmoid", "tanh", "leaky_relu"),
                "must be relu, sigmoid, tanh or leaky_relu",
            ),
            ("loss", self.loss in ("auto", *LOSSES), f"must be one of auto, {', '.join(LOSSES)}"),
            ("optimizer", self.optimizer in OPTIMIZERS, "must be sgd or adam"),
            ("missing", self.missing in MISSING, f"must be one of {', '.join(MISSING)}"),
            ("class_weight", self.class_weight in ("none", "balanced"), "must be none or balanced"),
            ("sep", isinstance(self.sep, str) and len(self.sep) <= 1, "must be one character"),
            ("decimal", self.decimal in ("", ".", ","), "must be '.' or ','"),
            (
                "thousands",
                self.thousands in ("", ",", ".", " ", "'", "_"),
                "must be , . ' _ or space",
            ),
            (
                "features",
                isinstance(self.features, list) and all(isinstance(f, str) for f in self.features),
                "must be a list of names",
            ),
            (
                "hidden",
                isinstance(self.hidden, list)
                and all(
                    isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in self.hidden
                ),
                "must be a list of positive integers",
            ),
        ]
        for key, ok, why in checks:
            if not ok:
                bad(key, why)
        auto = {k for k in ("batch_size", "patience") if getattr(self, k) == "auto"}
        for key, lo, integer in (
            ("lr", 0, False),
            ("batch_size", 1, True),
            ("epochs", 1, True),
            ("patience", 0, True),
            ("seed", 0, True),
            ("threads", 0, True),
        ):
            v = getattr(self, key)
            if key in auto:
                continue
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or (integer and not isinstance(v, int))
            ):
                bad(key, f"must be {'an integer' if integer else 'a number'}, got {v!r}")
            if (
                (isinstance(v, float) and not math.isfinite(v))
                or v < lo
                or (key == "lr" and v <= 0)
            ):
                bad(key, f"must be {'positive' if key == 'lr' else f'>= {lo}'}, got {v!r}")
        for key, limit in (
            ("seed", 2**32 - 1),
            ("batch_size", 2**31),
            ("epochs", 10**7),
            ("patience", 10**7),
            ("threads", 1024),
        ):
            if key not in auto and getattr(self, key) > limit:
                bad(key, f"must be at most {limit}, got {getattr(self, key)!r}")
        if (self.decimal and self.decimal == self.thousands) or (
            self.sep and self.sep in (self.decimal, self.thousands)
        ):
            bad("decimal", "the delimiter, decimal mark and thousands separator must differ")
        vf = self.val_fraction
        if isinstance(vf, bool) or not isinstance(vf, (int, float)) or not 0 <= vf < 1:
            bad("val_fraction", f"must be a number in [0, 1), got {vf!r}")
        return self

    def for_rows(self, n_train: int) -> dict:
        """The values of the "auto" options for ``n_train`` training rows.

        Small tables (the course's) train with batch 32 and patience 20. A big table gets
        bigger batches (an epoch of 800,000 rows is thousands of updates already; the matrix
        products then run near BLAS speed), patience down to 5 epochs, and a minimum
        improvement of 1e-4 in the (standardised) validation loss, as scikit-learn's MLP
        ``tol`` does: without them a 1,000,000-row table ran for minutes on gains in the
        sixth digit.
        """
        big = n_train > 20_000
        batch = self.batch_size
        if batch == "auto":
            batch = int(min(512, 2 ** round(math.log2(n_train / 625)))) if big else 32
        patience = self.patience
        if patience == "auto":
            patience = max(5, round(20 * 20_000 / n_train)) if big else 20
        return {"batch_size": batch, "patience": patience, "min_delta": 1e-4 if big else 0.0}


def load_config_file(path) -> dict:
    """The keys of a TOML config file (errors name the file and line)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    from gradstep.data.tabular import read_text

    text = read_text(path)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path}: invalid TOML ({e})") from None
