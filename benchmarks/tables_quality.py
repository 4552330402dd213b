"""Default `gradstep train` against scikit-learn's default MLP on the bundled tables.

For each table and seed: an 80/20 split (stratified for classes); gradstep trains with its
defaults on the 80% (exactly what `gradstep train` does: it holds out its own validation rows
for early stopping) and is scored on the 20%; scikit-learn's `MLPClassifier`/`MLPRegressor`
with default settings is trained on the same 80%, encoded by the same fitted TableEncoder
(scikit-learn's MLP takes no text or dates), and scored on the same 20%.

    python benchmarks/tables_quality.py [--seeds 3] [--out benchmarks/tables_quality.json]

Prints a Markdown table (accuracy or R², mean over seeds) for docs/cli.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings

import numpy as np

from gradstep.data.bundled import DATASETS, load_frame
from gradstep.data.tabular import read_table
from gradstep.train.tabular import TabularModel, TrainConfig, train_tabular

TABLES = ["wine", "breast_cancer", "digits", "iris", "diabetes", "cars", "seattle-weather"]


def one(name: str, seed: int, folder: str) -> dict:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    target = DATASETS[name][1]
    df = load_frame(name)
    df = df[df[target].notna()]
    path = os.path.join(folder, f"{name}.csv")
    df.to_csv(path, index=False)
    table = read_table(path)
    cfg = TrainConfig(target=target, seed=seed)
    y_all = table[target]
    classify = name not in ("diabetes", "cars")
    tr, te = train_test_split(
        np.arange(len(table)),
        test_size=0.2,
        random_state=seed,
        stratify=y_all.astype(str) if classify else None,
    )
    train_csv = os.path.join(folder, f"{name}-{seed}-train.csv")
    df.iloc[np.sort(tr)].to_csv(train_csv, index=False)
    run = os.path.join(folder, f"{name}-{seed}-run")
    started = time.perf_counter()
    train_tabular(train_csv, cfg, run, verbose=0)  # `gradstep train`'s library, defaults
    seconds = time.perf_counter() - started
    model = TabularModel.load(run)
    test = table.iloc[np.sort(te)]
    scores = model.evaluate(test, path)
    ours = scores["accuracy"] if model.task == "classification" else scores["r2"]
    enc = model.encoder
    X_tr, X_te = enc.transform(table.iloc[np.sort(tr)]), enc.transform(test)
    if model.task == "classification":
        y_tr = table.iloc[np.sort(tr)][target].astype(str).to_numpy()
        y_te = test[target].astype(str).to_numpy()
        est = MLPClassifier(random_state=seed)
    else:
        y_tr = table.iloc[np.sort(tr)][target].astype(float).to_numpy()
        y_te = test[target].astype(float).to_numpy()
        est = MLPRegressor(random_state=seed)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X_tr, y_tr)
    sk_seconds = time.perf_counter() - started
    pred = est.predict(X_te)
    theirs = accuracy_score(y_te, pred) if model.task == "classification" else r2_score(y_te, pred)
    scaled = theirs
    if model.task == "regression":  # scikit-learn's MLP does not scale the target by default
        from sklearn.compose import TransformedTargetRegressor
        from sklearn.preprocessing import StandardScaler

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ttr = TransformedTargetRegressor(
                MLPRegressor(random_state=seed), transformer=StandardScaler()
            )
            scaled = r2_score(y_te, ttr.fit(X_tr, y_tr).predict(X_te))
    return {
        "table": name,
        "seed": seed,
        "task": model.task,
        "gradstep": float(ours),
        "sklearn": float(theirs),
        "sklearn_scaled_target": float(scaled),
        "gradstep_seconds": seconds,
        "sklearn_seconds": sk_seconds,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/tables_quality.json")
    ap.add_argument("--tables", default=",".join(TABLES))
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.tables.split(","):
            for seed in range(args.seeds):
                rows.append(one(name, seed, folder))
                print(json.dumps(rows[-1]), file=sys.stderr)
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)
    print(
        "| table | task | metric | gradstep train (default) | scikit-learn MLP (default) | "
        "difference | scikit-learn MLP, target standardised |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in args.tables.split(","):
        rs = [r for r in rows if r["table"] == name]
        ours, theirs = np.mean([r["gradstep"] for r in rs]), np.mean([r["sklearn"] for r in rs])
        scaled = np.mean([r["sklearn_scaled_target"] for r in rs])
        metric = "accuracy" if rs[0]["task"] == "classification" else "R²"
        print(
            f"| {name} | {rs[0]['task']} | {metric} | {ours:.3f} | {theirs:.3f} | "
            f"{ours - theirs:+.3f} | {scaled:.3f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
