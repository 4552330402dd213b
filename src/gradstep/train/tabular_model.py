"""A trained table model: the network, the column encoder and the target's classes or scale,
with what is needed to load it safely and predict from raw CSV columns."""

from __future__ import annotations

import dataclasses
import os

import numpy as np

import gradstep as gs
from gradstep import nn
from gradstep.autograd import no_grad
from gradstep.data.encoder import TableEncoder
from gradstep.data.tabular import check_columns, read_table
from gradstep.data.target import match_labels
from gradstep.errors import InputError
from gradstep.train import scores
from gradstep.train.config import TrainConfig


def available_memory() -> int | None:
    """Bytes of memory this machine can still give (Linux's MemAvailable), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_model_memory(widths: list[int], batch: int, training: bool, what: str) -> None:
    """Refuse, with the estimate, a network that cannot fit in this machine's memory, before a
    byte of it is allocated (``--hidden 1000000000`` or a hostile run config would otherwise
    take the machine down). Training holds per float32 parameter its value, gradient, two
    Adam moments and flat-buffer copies (about 6 x 4 bytes); activations are counted for a
    batch, forward and backward."""
    params = sum((a + 1) * b for a, b in zip(widths, widths[1:]))
    need = params * (24 if training else 4) + batch * sum(widths) * 4 * (3 if training else 1)
    have = available_memory()
    if have is not None and need > have:
        raise InputError(
            f"{what}: a {' -> '.join(map(str, widths))} network needs about "
            f"{need / 2**30:.1f} GiB ({params:,} parameters); this machine has "
            f"{have / 2**30:.1f} GiB available"
        )


def read_run_table(path, cfg: TrainConfig):
    """The table at ``path``, read with the run's delimiter and number format."""
    return read_table(
        path, sep=cfg.sep or None, decimal=cfg.decimal or None, thousands=cfg.thousands or None
    )


class TabularModel:
    """A trained model with everything needed to predict from raw CSV columns."""

    def __init__(
        self,
        model,
        config,
        encoder,
        task,
        classes=None,
        y_mean=0.0,
        y_std=1.0,
        target_format: str = "plain",
    ):
        self.model, self.config, self.encoder = model, config, encoder
        self.task, self.classes = task, classes
        self.y_mean, self.y_std = y_mean, y_std
        self.target_format = target_format  # how the target's numbers are written

    @property
    def features(self) -> list[str]:
        return self.encoder.used

    @classmethod
    def load(cls, run_dir) -> TabularModel:
        path = os.path.join(os.fspath(run_dir), "model.ckpt")
        if not os.path.exists(run_dir):
            raise InputError(f"--model {run_dir}: does not exist")
        if not os.path.exists(path):
            raise InputError(f"{run_dir}: no model.ckpt here; is it a folder from gradstep train?")
        if not os.path.isfile(path):
            raise InputError(f"{path}: not a regular file (a device, FIFO or folder)")
        state = gs.load(path)
        try:
            known = {f.name for f in dataclasses.fields(TrainConfig)}
            cfg = TrainConfig(**{k: v for k, v in state["config"].items() if k in known})
            cfg.validate(path)
            if "encoder" in state:
                encoder = TableEncoder.from_state_dict(state["encoder"])
            else:  # a run folder from before the encoder
                encoder = TableEncoder.from_legacy(state["features"], state["scaler"])
            n_out = len(state["classes"]) if state["task"] == "classification" else 1
            widths = [encoder.n_outputs, *cfg.hidden, n_out]
            check_model_memory(widths, 65536, training=False, what=f"{path}: its config")
            model = nn.mlp(encoder.n_outputs, cfg.hidden, n_out, cfg.activation)
            model.load_state_dict(state["model"])
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{path}: not a run this gradstep can read ({e})") from None
        return cls(
            model,
            cfg,
            encoder,
            state["task"],
            state.get("classes"),
            state["y_mean"],
            state["y_std"],
            target_format=state.get("target_format", "plain"),
        )

    def save(self, path) -> None:
        gs.save(
            {
                "model": self.model.state_dict(),
                "config": dataclasses.asdict(self.config),
                "encoder": self.encoder.state_dict(),
                "task": self.task,
                "classes": self.classes,
                "y_mean": self.y_mean,
                "y_std": self.y_std,
                "target_format": self.target_format,
            },
            path,
        )

    def _outputs(self, df, path, X=None) -> np.ndarray:
        """The network's outputs (float64) for rows of ``df`` (or their encoded matrix ``X``)."""
        X = self.encoder.transform(df, path) if X is None else X
        with no_grad():
            self.model.eval()
            # in chunks: a million rows at once would hold every layer's activations together
            chunks = [self.model(X[i : i + 65536]).data for i in range(0, len(X), 65536)]
            out = (np.concatenate(chunks) if chunks else self.model(X).data).astype(np.float64)
        bad = ~np.isfinite(out).all(axis=1)
        if bad.any():
            from gradstep.data.tabular import line_of

            where = line_of(df, int(np.flatnonzero(bad)[0])) if df is not None else "a row"
            raise InputError(
                f"{path} {where}: the model's output is not finite (damaged weights in the run?)"
            )
        return out

    def predict_proba(self, df, path="<data>") -> np.ndarray:
        """Class probabilities of shape (n_rows, n_classes), columns in ``classes`` order."""
        if self.task != "classification":
            raise InputError("--proba needs a classification run; this one is a regression")
        return _softmax(self._outputs(df, path))

    def predict(self, df, path="<data>") -> np.ndarray:
        """The predicted target of every row: class labels, or numbers in the target's units."""
        return self._decode(self._outputs(df, path))

    def _decode(self, out: np.ndarray) -> np.ndarray:
        if self.task == "classification":
            return np.asarray(self.classes, dtype=object)[out.argmax(axis=1)]
        return out[:, 0] * self.y_std + self.y_mean

    def evaluate(self, df, path="<data>", X=None) -> dict:
        """Scores against the target column of ``df`` (rows whose target is missing are left
        out): MAE, RMSE, R² for a regression; accuracy, macro-F1, per-class precision and
        recall and the confusion matrix for a classification. Labels compare by value.
        ``X``: the rows already encoded (training reuses its matrix)."""
        target = self.config.target
        check_columns(df, [target], path)
        present = df[target].notna().to_numpy()
        if not present.any():
            raise InputError(f"{path}, column '{target}': every target cell is missing")
        df = df[present]
        out = self._outputs(df, path, None if X is None else X[present])
        if self.task == "classification":
            truth = match_labels(df[target], self.classes, self.target_format)
            return scores.classification_scores(out.argmax(axis=1), truth, self.classes)
        from gradstep.data import columns as cols

        y = cols.to_numbers(df[target], self.target_format)
        cols.check_known(df[target], y, target, path, "a number")
        return scores.regression_scores(self._decode(out), y)


def _softmax(out: np.ndarray) -> np.ndarray:
    out = np.exp(out - out.max(axis=1, keepdims=True))
    return out / out.sum(axis=1, keepdims=True)
