"""Tables that ship with gradstep's dependencies (no download): scikit-learn's toy data sets and
vega_datasets' local ones, as pandas DataFrames ready for ``gradstep datasets --export``."""

from __future__ import annotations

from gradstep.errors import InputError


def _sklearn(name: str):
    def load():
        import sklearn.datasets as d

        bunch = getattr(d, f"load_{name}")(as_frame=True)
        return bunch.frame

    return load


def _vega(name: str):
    def load():
        import warnings

        from vega_datasets import local_data

        with warnings.catch_warnings():  # vega_datasets passes pandas a deprecated keyword
            warnings.simplefilter("ignore")
            return getattr(local_data, name.replace("-", "_"))()

    return load


#: name -> (what it is, its target column, loader)
DATASETS = {
    "seattle-weather": (
        "vega_datasets: 1,461 days of Seattle weather 2012-2015 (NOAA); used by the lecture",
        "weather",
        _vega("seattle-weather"),
    ),
    "cars": (
        "vega_datasets: 406 cars, 1970-1982, with missing values",
        "Miles_per_Gallon",
        _vega("cars"),
    ),
    "diabetes": (
        "scikit-learn: 442 patients, 10 features, a regression",
        "target",
        _sklearn("diabetes"),
    ),
    "wine": (
        "scikit-learn: 178 wines, 13 features, 3 classes (0, 1, 2)",
        "target",
        _sklearn("wine"),
    ),
    "breast_cancer": (
        "scikit-learn: 569 tumours, 30 features, 2 classes (0, 1)",
        "target",
        _sklearn("breast_cancer"),
    ),
    "digits": (
        "scikit-learn: 1,797 8x8 digit images, 64 pixels, 10 classes",
        "target",
        _sklearn("digits"),
    ),
    "iris": ("scikit-learn: 150 flowers, 4 features, 3 classes", "target", _sklearn("iris")),
}


def load_frame(name: str):
    """The bundled table ``name`` as a DataFrame (dates as ISO dates)."""
    if name not in DATASETS:
        raise InputError(f"no bundled dataset '{name}' (have: {', '.join(DATASETS)})")
    df = DATASETS[name][2]()
    for c in df.columns:
        if str(df[c].dtype).startswith("datetime"):
            df[c] = df[c].dt.strftime("%Y-%m-%d")
    return df
