from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_digits
from sklearn.linear_model import LinearRegression as SklearnOLS
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from gradstep.estimators import LinearRegression, MLPClassifier, MLPRegressor


@pytest.mark.parametrize(
    "estimator",
    [
        LinearRegression(),
        MLPRegressor(max_epochs=30, random_state=0),
        MLPClassifier(max_epochs=30, random_state=0),
    ],
    ids=lambda e: type(e).__name__,
)
def test_passes_scikit_learns_check_estimator_without_exemptions(estimator):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the checks warn on purpose (e.g. y as a column)
        results = check_estimator(estimator, on_fail=None)
    failed = [
        (r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"
    ]
    assert failed == []
    assert len(results) > 40


def test_full_batch_gradient_descent_reaches_least_squares_on_diabetes():
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    # The MSE Hessian 2 X^T X / n has eigenvalues 0.017 .. 8.05 here: GD is stable for
    # lr < 2 / 8.05 = 0.248 and needs ~ln(1e-8) / ln(1 - 0.2 * 0.017) = 5,400 steps.
    ours = LinearRegression(learning_rate=0.2, max_epochs=50_000, tol=1e-12).fit(X, y)
    ref = SklearnOLS().fit(X, y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-4)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-4)


def test_mlp_classifier_reaches_97_percent_on_digits():
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    clf = MLPClassifier(
        hidden_layer_sizes=(128,),
        learning_rate=2e-3,
        batch_size=32,
        max_epochs=100,
        patience=10,
        random_state=0,
    ).fit(Xtr, ytr)
    assert clf.score(Xte, yte) >= 0.97
    proba = clf.predict_proba(Xte)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    assert list(clf.classes_) == list(range(10))


def test_same_random_state_same_model_and_callers_rng_untouched():
    import gradstep as gs

    X, y = load_diabetes(return_X_y=True)
    gs.manual_seed(1)
    before = gs.random.get_rng_state()
    a = MLPRegressor(hidden_layer_sizes=(16,), max_epochs=5, random_state=3).fit(X, y)
    b = MLPRegressor(hidden_layer_sizes=(16,), max_epochs=5, random_state=3).fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert gs.random.get_rng_state() == before


def test_works_in_pipeline_gridsearch_and_cross_val_score():
    X, y = load_diabetes(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), MLPRegressor(max_epochs=20, random_state=0))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and np.all(scores > 0.2)
    grid = GridSearchCV(
        MLPRegressor(max_epochs=20, random_state=0), {"hidden_layer_sizes": [(8,), (32,)]}, cv=2
    ).fit(X, y)
    assert grid.best_params_["hidden_layer_sizes"] in [(8,), (32,)]


def test_divergent_learning_rate_is_a_clear_error():
    X, y = load_diabetes(return_X_y=True)
    with pytest.raises(ValueError, match="diverged.*learning_rate"):
        LinearRegression(learning_rate=0.5, max_epochs=5000).fit(X, y)


@pytest.mark.parametrize(
    "make",
    [
        lambda c: LinearRegression(learning_rate=0.2, max_epochs=300, compile=c),
        lambda c: MLPRegressor(hidden_layer_sizes=(8,), max_epochs=5, random_state=0, compile=c),
        lambda c: MLPClassifier(hidden_layer_sizes=(8,), max_epochs=5, random_state=0, compile=c),
    ],
    ids=["LinearRegression", "MLPRegressor", "MLPClassifier"],
)
def test_compile_is_a_parameter_and_says_what_ran(make):
    """fit's compile option, as scikit-learn parameters go: the replay is bit-identical to
    eager, the default (numba installed in the tests) runs native and agrees to rounding."""
    X, y = load_diabetes(return_X_y=True)
    if isinstance(make(True), MLPClassifier):
        y = (y > np.median(y)).astype(int)
    fitted = {c: make(c).fit(X, y) for c in (False, "replay", True)}
    assert [fitted[c].compile_backend_ for c in (False, "replay", True)] == [
        "eager",
        "replay",
        "native",
    ]
    eager, replay, native = (fitted[c].predict(X[:50]) for c in (False, "replay", True))
    assert eager.tobytes() == replay.tobytes()
    np.testing.assert_allclose(native, eager, rtol=1e-4, atol=1e-4 * np.abs(eager).max())
    assert make(True).get_params()["compile"] is True
    with pytest.raises(ValueError, match="compile must be one of"):
        make("fast").fit(X, y)
