"""The loss a run from ``gradstep train`` was trained with, on the rows of a table: the function
whose gradient and Hessian ``gradstep diagnose`` examines (with
:func:`gradstep.lab.critical_points.inspect_critical_point`, in the command line's layer).

The rows are prepared exactly as training prepared its own: the run's column encoder (the
imputation, one-hot levels and scales saved in ``model.ckpt``), the target standardised with the
training mean and standard deviation for a regression, class indices in the run's order for a
classification, and rows without a target left out (as are rows with a missing feature when the
run was trained with ``--missing drop``, as training dropped them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gradstep import nn
from gradstep.data.tabular import check_columns
from gradstep.errors import InputError
from gradstep.train.tabular_model import TabularModel, read_run_table

#: Losses with a kink: an exact Hessian is refused through them (gradstep.lab.network_hessian).
KINKED = {
    "mae": "whose gradient jumps where a residual is zero",
    "huber": "whose curvature jumps where a residual reaches delta",
}


@dataclass
class RunLoss:
    """The run's network, its training loss and the encoded rows it is evaluated on.

    ``X`` is float64 of shape (n_rows, n_inputs); ``y`` is float64 of shape (n_rows, 1) (the
    standardised target) for a regression, int64 of shape (n_rows,) for a classification.
    """

    run: TabularModel
    loss_fn: object
    loss: str  # the loss diagnosed: "mse", "ce"
    trained_with: str  # the loss the run was trained with
    X: np.ndarray
    y: np.ndarray
    rows_in_file: int
    left_out: dict = field(default_factory=dict)  # reason -> rows
    notes: list = field(default_factory=list)  # lines worth printing

    @property
    def model(self):
        return self.run.model

    @property
    def rows(self) -> int:
        return len(self.X)


def run_loss(run_dir, data_path, rows: int | None = None, loss: str | None = None) -> RunLoss:
    """Load the run at ``run_dir`` and prepare its training loss on ``data_path``'s rows.

    ``rows``: only the first ``rows`` rows that have a target. ``loss``: "mse" or "ce" instead
    of the run's own loss; needed for a run trained with the MAE or Huber loss, which is refused
    otherwise (its gradient jumps, so no exact Hessian exists). Every problem with the inputs is
    an :class:`InputError` of one line naming the file, line or column.
    """
    if rows is not None and rows < 1:
        raise InputError(f"--rows must be at least 1, got {rows}")
    run = TabularModel.load(run_dir)
    cfg = run.config
    classification = run.task == "classification"
    trained = cfg.loss if cfg.loss != "auto" else ("ce" if classification else "mse")
    name = loss or trained
    if name in KINKED:
        raise InputError(
            f"{run_dir}: trained with the {name} loss, {KINKED[name]}: no exact Hessian is "
            "taken through it; pass --loss mse to diagnose the MSE at these weights instead (a "
            "different loss, and labelled so)"
        )
    if classification != (name == "ce"):
        raise InputError(
            f"--loss {name}: does not fit this {run.task} run (use "
            f"{'ce' if classification else 'mse'})"
        )
    df = read_run_table(data_path, cfg)
    rows_in_file = len(df)
    check_columns(df, [cfg.target], data_path, "target column")
    check_columns(df, run.features, data_path, "feature column")
    keep = df[cfg.target].notna().to_numpy()
    left_out = {"missing target": int((~keep).sum())}
    if cfg.missing == "drop":  # as training did: its rows with a missing feature were dropped
        incomplete = run.encoder.missing_rows(df)
        left_out["missing feature"] = int((incomplete & keep).sum())
        keep &= ~incomplete
    left_out = {k: v for k, v in left_out.items() if v}
    df = df[keep]
    if len(df) == 0:
        what = "a target and every feature" if "missing feature" in left_out else "a target"
        raise InputError(f"{data_path}, column '{cfg.target}': no row has {what}")
    if rows is not None:
        df = df.iloc[:rows]
    X = run.encoder.transform(df, data_path)
    notes = []
    if name != trained:
        notes.append(
            f"the run was trained with the {trained} loss; this is the {name} loss at its "
            "weights (--loss), whose gradient need not vanish there"
        )
    if classification:
        from gradstep.data.target import class_codes

        y = class_codes(df, cfg.target, run.classes, run.target_format, data_path)
        loss_fn = nn.CrossEntropyLoss()
        if cfg.class_weight == "balanced":
            counts = np.bincount(y, minlength=len(run.classes)).astype(np.float64)
            weight = np.where(counts > 0, len(y) / (len(counts) * np.maximum(counts, 1)), 0.0)
            loss_fn = nn.CrossEntropyLoss(weight=weight)
            notes.append(
                "class weights (balanced) from these rows' counts; training took them from its "
                "training rows"
            )
    else:
        from gradstep.data import columns as cols

        values = cols.to_numbers(df[cfg.target], run.target_format)
        cols.check_known(df[cfg.target], values, cfg.target, data_path, "a number")
        y = ((values - run.y_mean) / run.y_std)[:, None]
        loss_fn = nn.MSELoss()
    return RunLoss(run, loss_fn, name, trained, X, y, rows_in_file, left_out, notes)
