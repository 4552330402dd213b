"""The fit loop: mini-batches (an *update* per batch), epochs (a pass over all batches),
validation, callbacks, and a checkpoint that resumes exactly where training stopped."""

from __future__ import annotations

import math
import os
import sys

import numpy as np

from gradstep import random as gs_random
from gradstep.autograd import no_grad
from gradstep.data.dataset import DataLoader
from gradstep.tracing import compile as compile_step
from gradstep.train import resume
from gradstep.train.callbacks import Callback, History, ProgressBar


def accuracy(output, target) -> float:
    """Fraction of rows whose arg-max (or sign, for one logit) equals the integer target."""
    out = output.data
    pred = out.argmax(axis=1) if out.ndim == 2 and out.shape[1] > 1 else (out.reshape(-1) > 0)
    return float(np.mean(pred == np.asarray(target.data).reshape(-1)))


METRICS = {"accuracy": accuracy}


COMPILE_MODES = (True, False, "auto", "replay", "native")


def _nan_hint(xb, yb) -> str:
    """What to try after a non-finite loss: the batch's own NaN or inf, if it has one (bad
    data, not a learning rate), else a smaller learning rate."""
    for what, t in (("inputs", xb), ("targets", yb)):
        a = np.asarray(getattr(t, "data", t))
        if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
            row = int(np.argwhere(~np.isfinite(a))[0][0]) if a.ndim else 0
            return (
                f"the batch's {what} hold NaN or inf, first at its row {row}: clean or drop "
                "those rows"
            )
    return "try a smaller learning rate"


class Trainer:
    """Trains ``model`` with ``loss_fn`` and ``optimizer``; see :func:`fit`."""

    def __init__(
        self,
        model,
        loss_fn,
        optimizer,
        scheduler=None,
        callbacks=(),
        metrics=(),
        verbose: int | None = None,
        terminate_on_nan: bool = True,
        compile: bool | str = True,  # noqa: A002 - the name users know from torch.compile
    ):
        self.model, self.loss_fn, self.optimizer, self.scheduler = (
            model,
            loss_fn,
            optimizer,
            scheduler,
        )
        unknown = [m for m in metrics if isinstance(m, str) and m not in METRICS]
        if unknown:
            raise ValueError(
                f"unknown metric {unknown[0]!r}; known: {', '.join(METRICS)} (or a function "
                "(output, target) -> float)"
            )
        self.metrics = {m: METRICS[m] if isinstance(m, str) else m for m in metrics}
        self.history = next((c for c in callbacks if isinstance(c, History)), None) or History()
        cbs = [c for c in callbacks if c is not self.history] + [self.history]
        if verbose != 0 and not any(isinstance(c, ProgressBar) for c in cbs):
            cbs.append(ProgressBar(enabled=None if verbose is None else bool(verbose)))
        self.callbacks: list[Callback] = cbs
        for c in cbs:
            c.trainer = self
        self.terminate_on_nan, self.verbose = terminate_on_nan, verbose
        self.stop_training, self.stop_reason, self.at_epoch_end = False, None, False
        self.epoch = self.start_batch = 0
        self.epochs = self.batches_per_epoch = 0
        self._order = None
        self._running = [0.0, 0]  # sum of loss * batch size, number of examples
        self._loader = None
        # The fast path: zero_grad, forward, loss and backward traced once and replayed
        # (bit-identical to eager). The update stays outside, after the NaN check.
        # verify: the first replay of each trace is checked against an eager run, so a loss
        # that computes with NumPy on .data (invisible to a trace) falls back to eager.
        # No retrace notice: the epoch's last, smaller batch is an expected new shape.
        if compile not in COMPILE_MODES:
            raise ValueError(f"compile must be one of {COMPILE_MODES}, got {compile!r}")
        self.compile = compile
        self._native_step = None  # see _choose_native
        self._forward_backward = (
            compile_step(self._eager_forward_backward, verify=True, notice_retrace=False)
            if compile
            else self._eager_forward_backward
        )
        self._evaluate_batch = (
            compile_step(self._eager_evaluate_batch, verify=True, notice_retrace=False)
            if compile
            else self._eager_evaluate_batch
        )

    def _choose_native(self) -> None:
        """Compile forward+backward to native code (numba) when asked (``"native"``) or by
        default (``True``/``"auto"``, numba installed); the update stays outside, after the
        loss is checked. Every batch shape shares one compilation (the sizes are arguments of
        the compiled function), so the epoch's smaller last batch costs a trace, not a compile."""
        from gradstep.tracing.native import available

        want = self.compile == "native" or (self.compile in (True, "auto") and available())
        if want and self._native_step is None:
            step = compile_step(
                self._eager_forward_backward,
                verify=True,
                notice_retrace=False,
                backend="native" if self.compile == "native" else "auto",
            )
            step.name = "fit's forward and backward"
            # asked for by name: a warning when it cannot be had; the default: reported by fit
            step.notice_native = self.compile == "native"
            self._forward_backward = self._native_step = step

    def _eager_forward_backward(self, xb, yb):
        self.optimizer.zero_grad()
        loss = self.loss_fn(self.model(xb), yb)
        loss.backward()
        return loss

    def _eager_evaluate_batch(self, xb, yb):
        out = self.model(xb)
        return out, self.loss_fn(out, yb)

    # --- the loop ------------------------------------------------------------------------------
    def fit(
        self,
        train_loader: DataLoader,
        val_loader: DataLoader | None = None,
        epochs: int = 1,
        resume_from=None,
        resume_weights_only: bool = False,
    ) -> History:
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        if len(train_loader) == 0:
            raise ValueError(
                "the training loader yields no batch (empty dataset, or drop_last "
                "with fewer examples than batch_size)"
            )
        self._loader, self.epochs = train_loader, epochs
        self.batches_per_epoch = len(train_loader)
        self._choose_native()
        self.resumed = resume_from is not None and not resume_weights_only
        if resume_from is not None and resume_weights_only:
            from gradstep.io import load

            self.model.load_state_dict(load(resume_from)["model"])
        elif resume_from is not None:
            self.load_checkpoint(resume_from)
        self._emit("on_train_begin", {})
        try:
            # overflow is detected, not warned about: a non-finite loss stops the run with a
            # message, and a non-finite parameter never reaches a checkpoint
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                while self.epoch < epochs and not self.stop_training:
                    self._run_epoch(val_loader)
        finally:
            self._emit("on_train_end", {})
        self.history.stop_reason = self.stop_reason
        self._report_compile()
        if self.stop_reason and self.verbose != 0:
            print(self.stop_reason, file=sys.stderr)
        return self.history

    def _report_compile(self) -> None:
        """What ran the steps (History.compile_backend, compile_seconds, compile_notice), and
        one line on stderr where a progress bar would show: the native compilation's time, or
        why the steps were replayed instead."""
        h, native = self.history, self._native_step
        programs = native.native_programs if native is not None else []
        seconds = native.compile_seconds if native is not None else []
        h.compile_seconds = sum(seconds)  # native compilation (or cache loads)
        h.compile_cached = bool(programs) and not any(p.compiled for p in programs)
        eager = native.eager_reasons if native is not None else {}
        h.compile_backend = (
            "native" if programs else ("replay" if self.compile and not eager else "eager")
        )
        h.compile_notice = (
            None
            if native is None or programs
            else (next(iter(eager.values()), None) or native.native_notice)
        )
        shown = self.verbose if self.verbose is not None else sys.stderr.isatty()
        if not shown:
            return
        if seconds:
            from gradstep.tracing.native import cache_dir

            how = "loaded from the cache" if h.compile_cached else "compiled"
            print(
                f"native step: {how} in {sum(seconds):.1f} s ({cache_dir()})",
                file=sys.stderr,
            )
        elif h.compile_notice:
            print(f"{h.compile_notice}; replayed with NumPy", file=sys.stderr)

    def _run_epoch(self, val_loader) -> None:
        model, opt, loader = self.model, self.optimizer, self._loader
        epoch = self.epoch
        if self._order is None:  # a resumed run already has this epoch's order
            self._order = loader.order()
            self._running = [0.0, 0]
        self.at_epoch_end = False
        self._emit("on_epoch_begin", epoch, {})
        model.train()
        for b, (xb, yb) in enumerate(
            loader.batches(self._order, self.start_batch), start=self.start_batch
        ):
            loss = self._forward_backward(xb, yb)
            value = float(loss.data)
            if self.terminate_on_nan and not math.isfinite(value):
                self.stop_training = True
                self.stop_reason = (
                    f"training stopped: the loss is {value} at epoch {epoch + 1}, batch {b + 1}; "
                    "this step's update was not applied, and no checkpoint holds a "
                    f"non-finite parameter ({_nan_hint(xb, yb)})"
                )
                return
            self._emit("on_before_step", b, {"loss": value, "epoch": epoch})
            opt.step()
            n = len(yb)
            self._running[0] += value * n
            self._running[1] += n
            self.start_batch = b + 1
            self.at_epoch_end = self.start_batch == self.batches_per_epoch
            self._emit("on_batch_end", b, {"loss": value, "epoch": epoch})
        logs = {"epoch": epoch + 1, "loss": self._running[0] / max(self._running[1], 1)}
        if val_loader is not None:
            logs.update(self.evaluate(val_loader, prefix="val_"))
        logs["lr"] = self.optimizer.param_groups[0]["lr"]
        self._emit("on_epoch_logs", epoch, logs)  # GradientNorm's grad_norm, before any reader
        if self.scheduler is not None:
            self.scheduler.step()
        self.epoch, self.start_batch, self._order = epoch + 1, 0, None
        self._emit("on_epoch_end", epoch, logs)
        # only now is the epoch complete (History has it, EarlyStopping has judged it): the
        # epoch-end checkpoint is written here, so a crash right after it resumes identically
        self._emit("after_epoch_end", epoch, logs)

    def evaluate(self, loader: DataLoader, prefix: str = "") -> dict:
        """Mean loss (and metrics) over ``loader`` in eval mode, without recording a graph."""
        was_training = self.model.training
        self.model.eval()
        total, count, metric_sums = 0.0, 0, dict.fromkeys(self.metrics, 0.0)
        with no_grad():
            for xb, yb in loader:
                out, loss = self._evaluate_batch(xb, yb)
                n = len(yb)
                total += float(loss.data) * n
                count += n
                for name, fn in self.metrics.items():
                    metric_sums[name] += fn(out, yb) * n
        self.model.train(was_training)
        if count == 0:
            raise ValueError("the validation loader yields no batch")
        logs = {f"{prefix}loss": total / count}
        logs.update({f"{prefix}{k}": v / count for k, v in metric_sums.items()})
        return logs

    def _emit(self, hook: str, *args) -> None:
        for c in self.callbacks:
            getattr(c, hook)(*args)

    # --- exact resume -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything a resumed run needs to continue bit-identically."""
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "batch": self.start_batch,
            "running": list(self._running),
            "rng": gs_random.get_rng_state(),
            "callbacks": resume.callback_states(self.callbacks),
            "run": resume.describe(self),
            "stopped": [self.stop_training, self.stop_reason or ""],
        }
        if self._order is not None:
            state["order"] = self._order
        gen = getattr(self._loader, "generator", None)
        if gen is not None:
            state["loader_rng"] = gen.bit_generator.state
        if self.scheduler is not None:
            state["scheduler"] = self.scheduler.state_dict()
        return state

    def load_state_dict(self, state: dict, path="<state>") -> None:
        if "optimizer" not in state or "epoch" not in state or "rng" not in state:
            raise ValueError(
                f"resume_from {path}: holds only a model's weights (best.ckpt?), not a training "
                "state; resume from last.ckpt, or pass resume_weights_only=True"
            )
        resume.check(state.get("run"), resume.describe(self), path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.start_batch = int(state["epoch"]), int(state["batch"])
        self._running = [float(state["running"][0]), int(state["running"][1])]
        self._order = state.get("order")
        gs_random.set_rng_state(state["rng"])
        gen = getattr(self._loader, "generator", None)
        if gen is not None and "loader_rng" in state:
            gen.bit_generator.state = state["loader_rng"]
        if self.scheduler is not None and "scheduler" in state:
            self.scheduler.load_state_dict(state["scheduler"])
        resume.load_callback_states(self.callbacks, state.get("callbacks", {}), path)
        stopped, reason = state.get("stopped", [False, ""])
        self.stop_training, self.stop_reason = bool(stopped), (reason or None)

    def save_checkpoint(self, path) -> bool:
        """Write the training state to ``path``, unless a parameter is no longer finite: then
        the file keeps the last finite state, training stops, and False is returned."""
        from gradstep.io import save

        state = self.state_dict()
        bad = [k for k, v in state["model"].items() if not np.all(np.isfinite(v))]
        if bad:
            self.stop_training = True
            self.stop_reason = (
                f"training stopped: parameter '{bad[0]}' is no longer finite at epoch "
                f"{self.epoch + 1}; {os.path.basename(path)} keeps the last finite state "
                "(try a smaller learning rate)"
            )
            return False
        save(state, path)
        return True

    def load_checkpoint(self, path) -> None:
        from gradstep.io import load

        self.load_state_dict(load(path), path)


def fit(
    model,
    loss_fn,
    optimizer,
    train_loader,
    val_loader=None,
    epochs: int = 1,
    callbacks=(),
    scheduler=None,
    metrics=(),
    verbose: int | None = None,
    resume_from=None,
    terminate_on_nan: bool = True,
    resume_weights_only: bool = False,
    compile: bool | str = True,  # noqa: A002 - the name users know from torch.compile
) -> History:
    """Train ``model``: for each epoch, for each mini-batch, zero_grad / forward / loss /
    backward / step, then validate.

    Parameters
    ----------
    model : Module
    loss_fn : callable (output, target) -> scalar Tensor, e.g. ``nn.MSELoss()``
    optimizer : Optimizer
    train_loader, val_loader : DataLoader
    epochs : int
    callbacks : list of Callback (History, EarlyStopping, ModelCheckpoint, GradientNorm, ...)
    scheduler : LRScheduler, stepped after every epoch
    metrics : names ("accuracy") or functions (output, target) -> float, computed on validation
    verbose : 0 silences the progress bar; None shows it only on a terminal
    resume_from : path of a ``last.ckpt`` written by ModelCheckpoint: continue exactly there.
        The checkpoint records the run (model, optimizer and its settings, data length and a
        sample's hash, batch size, shuffle, callbacks); a different run is refused with a line
        naming the difference (:mod:`gradstep.train.resume`)
    resume_weights_only : start a new run from the weights of ``resume_from`` (a ``last.ckpt``
        or ``best.ckpt``), with a fresh optimizer, epoch 0 and fresh callbacks
    terminate_on_nan : stop at the first non-finite loss, before it touches the parameters
    compile : how zero_grad, forward, loss and backward run (:func:`gradstep.compile`). They
        are traced once per batch shape, then run compiled. False runs every step eagerly
        (needed only for a loss or model whose ops depend on Python state other than the
        batch's shapes, which a trace cannot see; see :mod:`gradstep.tracing`).
        True (``"auto"``, the default) compiles forward, loss and backward to native code
        with numba where it pays (``gradstep[native]`` installed; equal to eager to rounding;
        large matrix products on several BLAS threads stay with NumPy's BLAS: see
        docs/compile.md) and replays them with NumPy otherwise; a model with an op that has
        no native kernel is replayed, and ``history.compile_notice`` (and a line on stderr,
        where a progress bar shows) names the op. ``"native"`` insists (numba required; a
        model it cannot compile is replayed with a ``CompileWarning``); ``"replay"`` always
        replays, bit-identical to eager. The update always runs after the loss is checked.

    Returns
    -------
    History, with ``history.history[name]`` per epoch and ``stop_reason``.
    """
    trainer = Trainer(
        model,
        loss_fn,
        optimizer,
        scheduler,
        callbacks,
        metrics,
        verbose,
        terminate_on_nan,
        compile,
    )
    return trainer.fit(train_loader, val_loader, epochs, resume_from, resume_weights_only)
