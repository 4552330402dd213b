"""What the lecture report says: its sections, built from one run's numbers.

Each section is a dict (id, title, paragraphs, figures, tables, code) that the templates in
``templates/`` lay out as HTML and as Markdown; the words live here, once, and every number in
them comes from ``results`` (nothing is written down ahead of the run).
"""

from __future__ import annotations

import numpy as np


def _f(x, digits: int = 3) -> str:
    """A number rounded for people: ``digits`` significant digits, an exponent only for very
    large or very small sizes."""
    x = float(x)
    if not np.isfinite(x):
        return "inf (diverged)" if np.isinf(x) else "NaN"
    if x == 0:
        return "0"
    if abs(x) >= 1e6 or abs(x) < 1e-4:
        return f"{x:.{digits - 1}e}"
    decimals = max(digits - 1 - int(np.floor(np.log10(abs(x)))), 0)
    return f"{x:,.{decimals}f}"


def figure(file: str, caption: str, *notes: str) -> dict:
    return {"file": file, "caption": caption, "notes": list(notes)}


def surface_rows(s: dict) -> list[list[str]]:
    """Learning rate, final w, b, loss and a verdict for each gradient-descent path."""
    finals = [tuple(p) for p in s["final"]]
    stable = [
        i for i, (_, _, loss) in enumerate(finals) if np.isfinite(loss) and loss < s["start_loss"]
    ]
    largest = max(stable, key=lambda i: s["learning_rates"][i]) if stable else None
    rows = []
    for i, (lr, (w, b, loss)) in enumerate(zip(s["learning_rates"], finals)):
        if i not in stable:
            verdict = "diverged"
        elif i == largest:
            verdict = "largest stable"
        else:
            verdict = "too small"
        rows.append([f"{lr:g}", _f(w), _f(b), _f(loss), verdict])
    return rows


def experiment_story(rows: list[dict]) -> list[str]:
    """Why the networks do worse than a linear model on 2015 (or, on another run, what the
    numbers show instead), in the report itself."""
    linear = [r for r in rows if r["name"].startswith("linear")]
    relu = [r for r in rows if "ReLU" in r["name"]]
    if not linear or not relu:
        return []
    best = min(linear, key=lambda r: r["test_mae"])
    worse = [r for r in relu if r["test_mae"] > best["test_mae"]]
    train = [r["train_mae"] for r in relu]
    test = [r["test_mae"] for r in relu]
    days = f"{linear[0]['name'].split(', ')[1]} to {linear[-1]['name'].split(', ')[1]}"
    first, last = linear[0]["test_mae"], linear[-1]["test_mae"]
    if last < first - 0.005:
        trend = f"help the linear model a little ({days}: {_f(first)} to {_f(last)} deg C on "
        trend += "2015), as in the lecture"
    else:
        trend = f"hardly change the linear model's error on 2015 ({days}: {_f(first)} to "
        trend += f"{_f(last)} deg C)"
    out = [f"More days of history {trend}."]
    if len(worse) == len(relu):
        out.append(
            f"Every ReLU network does worse on 2015 ({_f(min(test))} to {_f(max(test))} deg C) "
            f"than the best linear model ({best['name']}, {_f(best['test_mae'])} deg C), while "
            f"its training error falls to {_f(min(train))} to {_f(max(train))} deg C. Unlike the "
            "lecture's video views, weather is close to a random walk around the season: the "
            "best predictor of tomorrow is mostly today, so there is little for a flexible "
            "model to find, and with about a thousand training days against thousands of "
            "parameters it memorises the training days instead. That is overfitting in its "
            "plainest form: a smaller loss on the training data and a larger one on new data."
        )
    else:
        out.append(
            f"{len(worse)} of the {len(relu)} ReLU networks do worse on 2015 than the best "
            f"linear model ({best['name']}, {_f(best['test_mae'])} deg C); their training "
            f"error is {_f(min(train))} to {_f(max(train))} deg C."
        )
    return out


def backprop_table(b: dict) -> dict:
    """The two passes sample by sample, and their sum beside the engine's .grad."""
    name = f"{b['parameter']}[{', '.join(map(str, b['index']))}]"
    rows = [
        [str(i), _f(f, 4), _f(g, 4), _f(f * g, 4)]
        for i, (f, g) in enumerate(zip(b["forward"], b["backward"]))
    ]
    rows.append(["sum", "", "", _f(b["product"], 10)])
    rows.append(["engine .grad", "", "", _f(b["engine"], 10)])
    return {
        "caption": f"dC/d{name} = sum over samples of forward x backward",
        "header": ["sample", "forward: dz/dw", "backward: dC/dz", "product"],
        "rows": rows,
    }


def overfitting_story(o: dict) -> tuple[str, list[str]]:
    """The overfitting figure's caption, true to what this run drew."""
    rising = {
        n: v for n, v in o.items() if v["val"] > 1.2 * v["best_val"] and v["train"] < v["best_val"]
    }
    if rising:
        n, v = max(rising.items(), key=lambda kv: kv[1]["val"] / kv[1]["best_val"])
        caption = (
            "Training and validation loss of growing models on a dozen noisy points: the "
            "validation loss turns up (dotted line) while the training loss keeps falling"
        )
        notes = [
            f"With 2 layers of {n}, the validation loss is lowest at epoch {v['best_epoch']} "
            f"({_f(v['best_val'])}) and rises to {_f(v['val'])} by the end, while the training "
            f"loss falls to {_f(v['train'])}: the model has started to fit the noise.",
            "The smallest model cannot fit even the training data (a high loss on both), the "
            "lecture's other failure: a model too simple to contain a good function.",
        ]
    else:
        caption = (
            "Training and validation loss of growing models on a dozen noisy points (in this "
            "run the validation loss stays flat rather than turning up)"
        )
        notes = ["The dotted line marks each model's lowest validation loss."]
    return caption, notes


def sections(results: dict) -> list[dict]:
    """The report's sections in the lecture's order, each with its figures and tables."""
    from gradstep.lab import report_small_gradient as small_gradient

    s, o = results["surface"], results["overfitting"]
    g1, pw, tt = results["gd_one_parameter"], results["piecewise"], results["three_tasks"]
    crit = results["critical_points"]
    rows = results["experiments"]
    over_caption, over_notes = overfitting_story(o)
    stuck = (
        f"Started at w = -0.3 it stops at w = {_f(g1['w_final'])}, a local minimum, while the "
        f"global minimum is at w = {_f(g1['global_minimum'])}: where dL/dw = 0 the update is 0."
        if g1["stuck"]
        else f"It reaches w = {_f(g1['w_final'])} (the global minimum is at "
        f"{_f(g1['global_minimum'])})."
    )
    return [
        {
            "id": "function",
            "title": "Step 1: a function with unknown parameters",
            "paragraphs": [
                "A linear model y = b + w x is too simple for most curves. Any piecewise-linear "
                "curve is a constant plus a sum of hard sigmoids, a smooth sigmoid "
                "c sigmoid(b + w x) approximates each one, and two ReLUs make one exactly: so a "
                "sum of enough sigmoids or ReLUs can follow any continuous curve.",
            ],
            "figures": [
                figure(
                    "piecewise.png",
                    "Piecewise linear = constant + sum of hard sigmoids; what w, b and c do; "
                    "two ReLUs make a hard sigmoid; a trained sum of sigmoids and its parts",
                    "In the first panels, w changes the slope of a sigmoid, b shifts it and c "
                    "changes its height.",
                    f"The last panel is the engine's own SigmoidSum trained on a real curve: "
                    f"its mean squared error is {_f(pw['fit_mse'])}, and each coloured part is "
                    "one sigmoid of the sum.",
                ),
                figure(
                    "three_tasks.png",
                    "Regression, classification and structured output (an image) on "
                    "scikit-learn's digits",
                    "The same three steps with a different output and loss: a number (MAE "
                    f"{_f(tt['regression_mae'])}), one of ten classes (accuracy "
                    f"{_f(100 * tt['accuracy'])}%), and an 8x8 image.",
                ),
            ],
        },
        {
            "id": "loss",
            "title": "Step 2: the loss, and its error surface",
            "paragraphs": [
                "The loss L(w, b) says how bad a choice of parameters is on the training data. "
                "Drawn over (w, b) it is the error surface; for this data (tomorrow's maximum "
                "temperature in Seattle from today's, 2012) it is a long, narrow valley.",
                f"The least-squares solution is w = {_f(s['least_squares'][0])}, "
                f"b = {_f(s['least_squares'][1])}; the lowest point of the drawn grid is "
                f"w = {_f(s['grid_min'][0])}, b = {_f(s['grid_min'][1])}.",
            ],
            "figures": [
                figure(
                    "error_surface.png",
                    "Error surface of y = b + w x with gradient descent at three learning "
                    "rates, from the same start",
                    "Each panel is the same surface (darker is lower); the line is the path of "
                    "gradient descent and its end the final point.",
                    "Too small a rate crawls; the largest stable one slides down the valley's "
                    "steep walls but barely moves along its floor (b); a slightly larger one "
                    "jumps from wall to wall and diverges.",
                ),
            ],
            "tables": [
                {
                    "caption": "Where gradient descent ends, per learning rate",
                    "header": ["learning rate", "final w", "final b", "final loss", "verdict"],
                    "rows": surface_rows(s),
                }
            ],
        },
        {
            "id": "optimization",
            "title": "Step 3: optimization by gradient descent",
            "paragraphs": [
                "Start somewhere, compute the slope dL/dw, step against it by the learning rate "
                "times the slope, repeat. The learning rate is a hyperparameter: chosen by "
                "us, not learned.",
            ],
            "figures": [
                figure(
                    "gd_one_parameter.png",
                    "Gradient descent on one parameter: the tangent at each step, the updates, "
                    "and getting stuck where dL/dw = 0",
                    "Each arrow is one update, w <- w - learning rate x dL/dw; the tangent lines "
                    "show the slope used.",
                    stuck,
                ),
            ],
        },
        {
            "id": "backprop",
            "title": "Backpropagation: one weight's gradient",
            "paragraphs": [
                "For a weight w into neuron z, dC/dw = dz/dw x dC/dz: the forward pass gives "
                "dz/dw (the input the weight multiplies), the backward pass gives dC/dz. Summed "
                "over the samples it equals the engine's .grad for that weight "
                f"({_f(results['backprop']['product'], 10)} against "
                f"{_f(results['backprop']['engine'], 10)}).",
            ],
            "tables": [backprop_table(results["backprop"])],
            "figures": [
                figure(
                    "backprop.png",
                    "One weight's gradient = forward-pass term x backward-pass term, equal to "
                    "the engine's .grad",
                    "The highlighted weight's two terms are shown per sample beside the network.",
                ),
            ],
        },
        {
            "id": "critical-points",
            "title": "Critical points",
            "paragraphs": [
                "Where the gradient is zero, the Hessian's eigenvalues tell what the point is: "
                "all positive, a local minimum; all negative, a local maximum; both signs, a "
                "saddle point, which gradient descent can still leave.",
            ],
            "tables": [
                {
                    "caption": "The origin of three functions of (x, y)",
                    "header": ["function", "kind", "Hessian eigenvalues"],
                    "rows": [
                        [k, v["kind"], ", ".join(_f(e) for e in v["eigenvalues"])]
                        for k, v in crit.items()
                    ],
                }
            ],
        },
        small_gradient.section(results),
        {
            "id": "overfitting",
            "title": "Overfitting",
            "paragraphs": [
                "A bigger model can fit the training data better, but a smaller training loss "
                "is not the goal: the loss on data the model has not seen is.",
            ],
            "figures": [figure("overfitting.png", over_caption, *over_notes)],
        },
        {
            "id": "experiment",
            "title": "The lecture's experiment on real data",
            "paragraphs": [
                "The lecture predicts a channel's daily views from the previous days. The views "
                "are not public, so gradstep does the same with tomorrow's maximum temperature "
                "in Seattle (NOAA, public domain): trained on 2012-2014, tested on 2015, mean "
                "absolute error in deg C. The lecture's own numbers (thousands of views) are "
                "beside ours to compare the pattern, not the values.",
                *experiment_story(rows),
            ],
            "tables": [
                {
                    "caption": "Train (L) and 2015 (L') mean absolute error of every model",
                    "header": ["model", "parameters", "train MAE", "2015 MAE", "lecture L / L'"],
                    "rows": [
                        [
                            r["name"],
                            f"{r['parameters']:,}",
                            f"{r['train_mae']:.3f} C",
                            f"{r['test_mae']:.3f} C",
                            f"{r['lecture'][0]:.2f}k / {r['lecture'][1]:.2f}k"
                            if r.get("lecture")
                            else "-",
                        ]
                        for r in rows
                    ],
                }
            ],
            "figures": [
                figure(
                    "experiments.png",
                    "Train and 2015 mean absolute error of every model",
                    "Look at the gap between the two bars of each model: "
                    + "; ".join(
                        f"{r['name']} {_f(r['test_mae'] - r['train_mae'])} deg C"
                        for r in (rows[0], rows[-1])
                    )
                    + ". A gap that grows while the training error falls is overfitting.",
                ),
                figure(
                    "learning_curves.png",
                    "Training loss per epoch of every model",
                    "Each line is one model's training error per epoch (log scale); at the "
                    "end: "
                    + "; ".join(f"{r['name']} {_f(r['train_mae'])} deg C" for r in rows)
                    + ".",
                ),
            ],
        },
    ]
