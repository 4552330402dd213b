"""The lecture's experiments on real data: predict tomorrow's maximum temperature in Seattle
from the previous k days (vega_datasets' seattle-weather, NOAA, 2012-2015, shipped in the
package: no download). Train on targets in 2012-2014, test on 2015; report MAE like the
lecture's L (training) and L' (unseen data)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import gradstep as gs
from gradstep import nn, optim
from gradstep.autograd import no_grad
from gradstep.data import DataLoader, StandardScaler, TensorDataset, sliding_windows
from gradstep.train import fit

#: The lecture's own numbers (YouTube views, in thousands), shown beside ours for reference.
LECTURE_TABLE = {
    "linear, 1 day": (0.48, 0.58),
    "linear, 7 days": (0.38, 0.49),
    "linear, 28 days": (0.33, 0.46),
    "linear, 56 days": (0.32, 0.46),
    "1 layer of 100 ReLU": (0.28, 0.43),
    "2 layers of 100 ReLU": (0.18, 0.39),
    "3 layers of 100 ReLU": (0.14, 0.38),
    "4 layers of 100 ReLU": (0.10, 0.44),
}


@dataclass
class Experiment:
    name: str
    days: int
    hidden: tuple = ()
    activation: str = "relu"


def experiments(quick: bool = False) -> list[Experiment]:
    grid = [Experiment(f"linear, {k} day{'s' if k > 1 else ''}", k) for k in (1, 7, 28, 56)]
    grid += [Experiment("100 sigmoids, 56 days", 56, (100,), "sigmoid")]
    grid += [
        Experiment(f"{n} layer{'s' if n > 1 else ''} of 100 ReLU", 56, (100,) * n)
        for n in (1, 2, 3, 4)
    ]
    return (
        grid
        if not quick
        else [
            g
            for g in grid
            if g.name
            in {
                "linear, 1 day",
                "linear, 56 days",
                "100 sigmoids, 56 days",
                "1 layer of 100 ReLU",
                "3 layers of 100 ReLU",
            }
        ]
    )


def load_series():
    """Daily maximum temperature (deg C) and dates, from the package's local copy."""
    from vega_datasets import local_data

    df = local_data.seattle_weather()
    return df["temp_max"].to_numpy(np.float64), df["date"].to_numpy()


def windows(days: int, max_days: int = 56):
    """Train/test windows; every model sees the same target days (those after max_days)."""
    series, dates = load_series()
    X, y = sliding_windows(series, days)
    target_dates = dates[days:]
    X, y, target_dates = X[max_days - days :], y[max_days - days :], target_dates[max_days - days :]
    test = target_dates >= np.datetime64("2015-01-01")
    return X[~test], y[~test], X[test], y[test]


@dataclass
class Standardised:
    """One experiment's windows and the statistics that standardise them, as
    :func:`run_experiment` does: inputs by a StandardScaler fitted on the training windows, the
    target by the training targets' mean and standard deviation (so the output bias need not
    walk 15 degrees). ``degrees`` turns a standardised prediction back into degrees C."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    scaler: StandardScaler
    y_mean: float
    y_std: float

    def inputs(self, X) -> np.ndarray:
        """The windows ``X`` as the model sees them (float64)."""
        return self.scaler.transform(np.asarray(X, np.float64))

    def targets(self, y) -> np.ndarray:
        """The temperatures ``y`` as the model is trained on them: a standardised column."""
        return ((np.asarray(y, np.float64) - self.y_mean) / self.y_std)[:, None]

    def degrees(self, prediction) -> np.ndarray:
        """A standardised prediction (any shape) back in degrees C."""
        return np.asarray(prediction, np.float64) * self.y_std + self.y_mean


def standardised_windows(days: int) -> Standardised:
    """:func:`windows` for ``days`` with :func:`run_experiment`'s standardisation fitted on the
    training part (2012-2014) only, so the test year (2015) stays unseen."""
    Xtr, ytr, Xte, yte = windows(days)
    return Standardised(Xtr, ytr, Xte, yte, StandardScaler().fit(Xtr), ytr.mean(), ytr.std())


def run_experiment(exp: Experiment, epochs: int, seed: int = 0) -> dict:
    Xtr, ytr, Xte, yte = windows(exp.days)
    scaler = StandardScaler().fit(Xtr)
    gs.manual_seed(seed)
    model = nn.mlp(exp.days, list(exp.hidden), 1, exp.activation)
    opt = optim.Adam(model.parameters(), lr=3e-3)
    y_mean, y_std = ytr.mean(), ytr.std()  # the bias need not walk 15 degrees at lr 3e-3
    loader = DataLoader(
        TensorDataset(scaler.transform(Xtr), ((ytr - y_mean) / y_std)[:, None]), 64, shuffle=True
    )
    history = fit(
        model,
        nn.L1Loss(),
        opt,
        loader,
        epochs=epochs,
        verbose=0,
        scheduler=optim.CosineAnnealingLR(opt, T_max=epochs),
    )

    def mae(X, y):
        with no_grad():
            model.eval()
            pred = model(scaler.transform(X)).data[:, 0] * y_std + y_mean
            return float(np.mean(np.abs(pred - y)))

    return {
        "name": exp.name,
        "days": exp.days,
        "train_mae": mae(Xtr, ytr),
        "test_mae": mae(Xte, yte),
        "epochs": epochs,
        "parameters": model.num_parameters(),
        "loss_curve": [v * y_std for v in history.history["loss"]],
        "lecture": LECTURE_TABLE.get(exp.name),
    }


def format_table(rows: list[dict]) -> str:
    head = f"{'model':<24} {'train MAE':>10} {'test MAE':>10}   lecture L / L' (k views)"
    lines = [head, "-" * len(head)]
    for r in rows:
        lec = r.get("lecture")
        ref = f"{lec[0]:.2f}k / {lec[1]:.2f}k" if lec else "-"
        lines.append(f"{r['name']:<24} {r['train_mae']:>9.3f}C {r['test_mae']:>9.3f}C   {ref}")
    return "\n".join(lines)
