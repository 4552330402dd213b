"""scikit-learn compatible estimators (import needs scikit-learn)."""

from gradstep.estimators.mlp import LinearRegression, MLPClassifier, MLPRegressor

__all__ = ["LinearRegression", "MLPClassifier", "MLPRegressor"]
