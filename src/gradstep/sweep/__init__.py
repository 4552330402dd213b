"""Sweeps: many small trainings over configurations and seeds, on one machine or a Dask cluster.

``gradstep.sweep(train, space, seeds=range(5), executor=None, out="runs/sweep")`` runs every
configuration once per seed and writes a resumable folder (journal, table, report); see
:func:`gradstep.sweep.runner.sweep` and docs/sweeps.md.

The package is itself callable, so ``gradstep.sweep(...)`` reads as the issue and the docs
write it while ``gradstep.sweep.loguniform`` and ``from gradstep.sweep import sweep`` work too
(a module's class may be replaced for this since Python 3.5).
"""

from __future__ import annotations

import sys
import types

from gradstep.sweep.runner import SweepResult, metric_mode, sweep, tabular
from gradstep.sweep.space import Distribution, loguniform, randint, uniform

__all__ = [
    "Distribution",
    "SweepResult",
    "loguniform",
    "metric_mode",
    "randint",
    "sweep",
    "tabular",
    "uniform",
]


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs) -> SweepResult:
        return sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
