"""scikit-learn estimators trained by gradstep: MLPRegressor, MLPClassifier, LinearRegression.

They follow scikit-learn's conventions: ``__init__`` only stores its arguments, ``fit`` returns
self, learned attributes end in ``_``, and they work in ``Pipeline``, ``GridSearchCV`` and
``cross_val_score``. Inputs are standardised inside ``fit`` (the statistics are part of the
fitted model), so they train well without a scaler in front.

Randomness (initial weights, shuffling, the validation split) comes from ``random_state`` alone:
``fit`` swaps gradstep's global generator for one seeded from it and puts the old one back, so
two fits with the same ``random_state`` are identical and the caller's RNG is untouched.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_is_fitted,
    check_random_state,
    column_or_1d,
    validate_data,
)

from gradstep import functional as F
from gradstep import nn, optim
from gradstep import random as gs_random
from gradstep.autograd import no_grad
from gradstep.backend import default_dtype
from gradstep.data import DataLoader, StandardScaler, TensorDataset
from gradstep.tensor import Tensor
from gradstep.tracing import compile as compile_step
from gradstep.train import EarlyStopping, fit

_OPTIMIZERS = {"adam": optim.Adam, "sgd": optim.SGD, "adamw": optim.AdamW, "rmsprop": optim.RMSprop}


class _MLPBase(BaseEstimator):
    _task = "regression"

    def __init__(
        self,
        hidden_layer_sizes=(64,),
        activation="relu",
        solver="adam",
        learning_rate=1e-3,
        batch_size=64,
        max_epochs=200,
        early_stopping=True,
        validation_fraction=0.1,
        patience=10,
        weight_decay=0.0,
        random_state=None,
        dtype="float32",
        compile=True,  # noqa: A002 - fit's name for it
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.weight_decay = weight_decay
        self.random_state = random_state
        self.dtype = dtype
        self.compile = compile

    def _check_params(self) -> None:
        if self.solver not in _OPTIMIZERS:
            raise ValueError(f"solver must be one of {sorted(_OPTIMIZERS)}, got {self.solver!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if int(self.batch_size) < 1 or int(self.max_epochs) < 1:
            raise ValueError("batch_size and max_epochs must be >= 1")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must be in [0, 1), got {self.validation_fraction}"
            )

    def _fit(self, X, y, n_outputs: int, loss_fn, y_dtype):
        self._check_params()
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(0, 2**31 - 1))
        saved_rng = gs_random.get_rng_state()
        gs_random.manual_seed(seed)
        try:
            with default_dtype(self.dtype):
                self.scaler_ = StandardScaler().fit(X)
                Xs = self.scaler_.transform(X)
                self.model_ = self._build(X.shape[1], n_outputs)
                opt_cls = _OPTIMIZERS[self.solver]
                optimizer = opt_cls(
                    self.model_.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
                )
                n = X.shape[0]
                n_val = int(round(self.validation_fraction * n)) if self.early_stopping else 0
                if n - n_val < 1 or n_val < 1:
                    n_val = 0
                perm = np.random.default_rng(seed).permutation(n)
                tr, va = perm[n_val:], perm[:n_val]
                gen = np.random.default_rng(seed + 1)
                train = DataLoader(
                    TensorDataset(Xs[tr], y[tr].astype(y_dtype)),
                    int(self.batch_size),
                    shuffle=True,
                    generator=gen,
                )
                val = (
                    DataLoader(TensorDataset(Xs[va], y[va].astype(y_dtype)), 4096)
                    if n_val
                    else None
                )
                callbacks = []
                if self.early_stopping:
                    callbacks.append(
                        EarlyStopping(
                            "val_loss" if val is not None else "loss",
                            patience=int(self.patience),
                            min_delta=1e-6,
                            restore_best_weights=True,
                        )
                    )
                history = fit(
                    self.model_,
                    loss_fn,
                    optimizer,
                    train,
                    val,
                    epochs=int(self.max_epochs),
                    callbacks=callbacks,
                    verbose=0,
                    compile=self.compile,
                )
        finally:
            gs_random.set_rng_state(saved_rng)
        self.compile_backend_ = history.compile_backend
        self.loss_curve_ = history.history["loss"]
        self.validation_scores_ = history.history.get("val_loss")
        self.n_iter_ = len(self.loss_curve_)
        return self

    def _build(self, n_in: int, n_out: int):
        return nn.mlp(n_in, [int(h) for h in self.hidden_layer_sizes], n_out, self.activation)

    def _forward(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False)
        dtype = self.model_[0].weight.dtype
        with no_grad():
            self.model_.eval()
            out = self.model_(Tensor(self.scaler_.transform(X), dtype=dtype))
        return out.data.astype(np.float64)


class MLPRegressor(RegressorMixin, _MLPBase):
    """A multi-layer perceptron for regression, trained with MSE by mini-batch gradient descent.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, neurons per hidden layer (the lecture's "layers")
    activation : "relu", "sigmoid", "tanh" or "leaky_relu"
    solver : "adam", "sgd", "adamw" or "rmsprop"
    learning_rate : float
    batch_size : int
    max_epochs : int
    early_stopping : bool, stop when the validation loss stops improving (and keep the best)
    validation_fraction : float, the share of the training data held out for that
    patience : int
    weight_decay : float
    random_state : int, RandomState or None
    dtype : "float32" or "float64"
    compile : True (native with numba where it pays, else replayed), "native", "replay"
        (bit-identical to eager) or False (eager): ``fit``'s option (docs/compile.md)

    Attributes
    ----------
    model_ : gradstep.nn.Sequential
    compile_backend_ : "native", "replay" or "eager": what ran the training steps
    scaler_ : StandardScaler of the inputs
    loss_curve_ : list of float, training loss per epoch
    n_iter_ : int, epochs run
    n_features_in_ : int
    """

    def fit(self, X, y):
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        y = column_or_1d(y, warn=True)
        self.y_mean_, self.y_scale_ = float(np.mean(y)), float(np.std(y)) or 1.0
        ys = ((y - self.y_mean_) / self.y_scale_).reshape(-1, 1)
        return self._fit(X, ys, 1, nn.MSELoss(), np.float64)

    def predict(self, X) -> np.ndarray:
        """Predictions of shape (n_samples,)."""
        return self._forward(X).reshape(-1) * self.y_scale_ + self.y_mean_


class MLPClassifier(ClassifierMixin, _MLPBase):
    """A multi-layer perceptron classifier trained with cross-entropy (softmax outputs).

    Parameters are those of :class:`MLPRegressor`.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    model_, scaler_, loss_curve_, n_iter_, n_features_in_, compile_backend_ : as MLPRegressor
    """

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float64)
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        self._encoder = LabelEncoder().fit(y)
        self.classes_ = self._encoder.classes_
        codes = self._encoder.transform(y)
        if len(self.classes_) < 2:
            raise ValueError(
                f"MLPClassifier needs at least 2 classes in y, got 1 class ({self.classes_[0]!r})"
            )

        def loss_fn(out, target):
            return F.cross_entropy(out, target)

        return self._fit(X, codes, len(self.classes_), loss_fn, np.int64)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities of shape (n_samples, n_classes)."""
        logits = self._forward(X)
        return F.softmax(Tensor(logits, dtype=np.float64)).data

    def predict(self, X) -> np.ndarray:
        """Predicted labels of shape (n_samples,)."""
        check_is_fitted(self, "model_")
        return self.classes_[np.argmax(self._forward(X), axis=1)]


class LinearRegression(RegressorMixin, BaseEstimator):
    """y = b + w . x fitted by full-batch gradient descent on the MSE: the lecture's first model.

    Each update uses every example (plain gradient descent, ``SGD`` on the full batch) on
    standardised features, until the largest gradient component falls below ``tol``; it
    converges to the least-squares solution scikit-learn's LinearRegression computes in closed
    form.

    Parameters
    ----------
    learning_rate : float
    max_epochs : int, the most updates
    tol : float, stop when max |dL/dtheta| < tol
    dtype : "float64" or "float32"
    compile : True (native with numba where it pays, else replayed), "native", "replay"
        (bit-identical to eager) or False (eager), as ``fit``'s

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,), in the units of the original features
    compile_backend_ : "native", "replay" or "eager": what ran the gradient steps
    intercept_ : float
    n_iter_ : int, updates made
    loss_curve_ : list of float
    """

    def __init__(
        self,
        learning_rate=0.1,
        max_epochs=20000,
        tol=1e-9,
        dtype="float64",
        compile=True,  # noqa: A002 - fit's name for it
    ):
        self.learning_rate = learning_rate
        self.max_epochs = max_epochs
        self.tol = tol
        self.dtype = dtype
        self.compile = compile

    def fit(self, X, y):
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        y = column_or_1d(y, warn=True)
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        scaler = StandardScaler().fit(X)
        y_mean, y_scale = float(np.mean(y)), float(np.std(y)) or 1.0
        with default_dtype(self.dtype):
            xt = Tensor(scaler.transform(X))
            yt = Tensor(((y - y_mean) / y_scale).reshape(-1, 1))
            layer = nn.Linear(X.shape[1], 1)
            layer.weight.data[...] = 0
            layer.bias.data[...] = 0
        opt = optim.SGD(layer.parameters(), lr=self.learning_rate)

        from gradstep.train.loop import COMPILE_MODES

        if self.compile not in COMPILE_MODES:
            raise ValueError(f"compile must be one of {COMPILE_MODES}, got {self.compile!r}")

        def forward_backward():
            opt.zero_grad()
            loss = F.mse_loss(layer(xt), yt)
            loss.backward()
            return loss

        if self.compile:  # thousands of identical full-batch steps: traced once, then native
            backend = {"native": "native", "replay": "replay"}.get(self.compile, "auto")
            # verify: the numbers are the native step's from the first call on
            forward_backward = compile_step(forward_backward, verify=True, backend=backend)
            forward_backward.notice_native = self.compile == "native"  # else: nothing to do
        self.loss_curve_ = []
        step = 0
        for step in range(int(self.max_epochs)):  # noqa: B007 - n_iter_ below
            loss = forward_backward()
            self.loss_curve_.append(float(loss.data))
            if not np.isfinite(self.loss_curve_[-1]) or self.loss_curve_[-1] > 1e12:
                raise ValueError(
                    f"gradient descent diverged at update {step + 1} (loss "
                    f"{self.loss_curve_[-1]:.3g}); lower learning_rate={self.learning_rate}"
                )
            if max(np.abs(p._grad).max() for p in layer.parameters()) < self.tol:
                break
            opt.step()
        self.n_iter_ = step + 1
        programs = getattr(forward_backward, "native_programs", None)
        self.compile_backend_ = (
            "eager"
            if programs is None or forward_backward.eager_reasons
            else ("native" if programs else "replay")
        )
        w = layer.weight.data.reshape(-1).astype(np.float64)
        b = float(layer.bias.data[0])
        self.coef_ = w / scaler.scale_ * y_scale
        self.intercept_ = (b - float(np.sum(w * scaler.mean_ / scaler.scale_))) * y_scale + y_mean
        return self

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return X @ self.coef_ + self.intercept_
