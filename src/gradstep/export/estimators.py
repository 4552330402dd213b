"""Exporting a fitted ``MLPRegressor`` / ``MLPClassifier``: what its fitted attributes mean.

Both standardise inputs inside ``fit``: ``scaler_`` (a gradstep ``StandardScaler``) holds the
mean and scale, and ``predict`` runs ``model_`` on ``(X - scaler_.mean_) / scaler_.scale_``.
The regressor also trains on a standardised target, so its prediction is
``model_(...) * y_scale_ + y_mean_``. The classifier's ``model_`` gives one logit per entry of
``classes_``; ``predict_proba`` is their softmax and ``predict`` the class of the largest.
Duck-typed, so exporting never imports scikit-learn.
"""

from __future__ import annotations


def from_estimator(est, n_features, input_transform, output_transform, task, classes, what):
    """The keyword arguments of :func:`gradstep.export.spec.prepare` for a fitted estimator."""
    name = type(est).__name__
    if not (hasattr(est, "fit") and hasattr(est, "predict")):
        raise ValueError(
            f"{what}: expected a gradstep nn.Sequential or a fitted MLPRegressor/MLPClassifier, "
            f"got a {name}"
        )
    if not hasattr(est, "model_"):
        if hasattr(est, "coef_"):
            raise ValueError(f"{what}: {name} is not supported; export an MLPRegressor instead")
        raise ValueError(f"{what}: this {name} is not fitted yet; call fit(X, y) first")
    if not hasattr(est, "scaler_"):
        raise ValueError(f"{what}: {name} has a model_ but no scaler_; it is not a gradstep MLP")
    if input_transform is not None or output_transform is not None or classes is not None:
        raise ValueError(
            f"{what}: the transforms and classes of a fitted {name} come from the estimator "
            "itself; do not pass input_transform=, output_transform= or classes="
        )
    derived = "classification" if hasattr(est, "classes_") else "regression"
    if task is not None and task != derived:
        raise ValueError(f"{what}: {name} is a {derived} model, not {task}")
    if n_features is not None and n_features != est.n_features_in_:
        raise ValueError(
            f"{what}: {name} was fitted on {est.n_features_in_} features, "
            f"not n_features={n_features}"
        )
    kwargs = dict(
        model=est.model_,
        n_features=int(est.n_features_in_),
        input_transform={"mean": est.scaler_.mean_, "scale": est.scaler_.scale_},
        output_transform=None,
        task=derived,
        classes=None,
        what=what,
    )
    if derived == "classification":
        kwargs["classes"] = list(est.classes_)
    else:
        kwargs["output_transform"] = {"mean": est.y_mean_, "scale": est.y_scale_}
    return kwargs
