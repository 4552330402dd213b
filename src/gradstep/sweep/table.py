"""``trials.csv``: the journal as a table, one row per trial (rewritten atomically from the
journal, which stays the record)."""

from __future__ import annotations

import csv
import io
import os

from gradstep.io import atomic_write_bytes
from gradstep.sweep.journal import TABLE, write_marker


def _cell(v):
    if isinstance(v, list):
        return ",".join(str(x) for x in v)
    if isinstance(v, float):
        return repr(v)
    return v


def table_text(rows: list, metric: str) -> str:
    """``trials.csv``: one row per trial, every swept option as a column, the metrics after."""
    options, metrics = [], []
    for r in rows:
        options += [k for k in r["config"] if k not in options]
        metrics += [k for k in r.get("metrics", {}) if k not in metrics]
    metrics.sort(key=lambda k: (k != metric, k))
    header = ["trial_id", "config_id", *options, "seed", "status", *metrics]
    header += ["seconds", "worker", "message"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        m = r.get("metrics", {})
        w.writerow(
            [r["trial_id"], r["config_id"]]
            + [_cell(r["config"].get(k, "")) for k in options]
            + [r["seed"], r["status"]]
            + [repr(m[k]) if k in m else "" for k in metrics]
            + [r.get("seconds", ""), r.get("worker", ""), r.get("message", "")]
        )
    return buf.getvalue()


def write_table(folder: str, rows: list, metric: str) -> None:
    atomic_write_bytes(os.path.join(folder, TABLE), table_text(rows, metric).encode())
    write_marker(folder, [TABLE])
