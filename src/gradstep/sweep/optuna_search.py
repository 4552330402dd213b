"""``strategy="optuna"``: Optuna's TPE proposes configurations, the sweep's executor runs them.

Optuna is asked in the driver only (its ask-and-tell interface), so workers never propose and a
seeded sampler cannot make two workers try the same configuration. A configuration's value is
the mean of the metric over the seeds; it is told to Optuna when its last seed finishes. A
proposal equal to a configuration already tried is told that configuration's value (or, while
it runs, asked again) and never run twice. A resumed sweep gives Optuna the finished
configurations from the journal (``add_trial``) and reruns only the seeds that were missing.
"""

from __future__ import annotations

import json
import math

from gradstep.errors import InputError
from gradstep.sweep.space import Distribution, Trial, is_grid

PROPOSALS = 200  # asks for one new configuration before the space counts as exhausted


def _key(config: dict) -> str:
    return json.dumps(config, sort_keys=True)


class OptunaPlanner:
    def __init__(self, space, seeds, n_trials, sample_seed, mode, metric, journal):
        try:
            import optuna
        except ImportError:
            raise InputError("strategy 'optuna' needs Optuna: pip install optuna") from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna, self.space, self.seeds, self.metric = optuna, space, seeds, metric
        self.dists = {k: self._distribution(k, v) for k, v in space.items()}
        if is_grid(space):
            n_trials = min(n_trials, math.prod(len(v) for v in space.values()))
        self.n_trials = n_trials
        self.total = n_trials * len(seeds)
        direction = "minimize" if mode == "min" else "maximize"
        sampler = optuna.samplers.TPESampler(seed=sample_seed)
        self.study = optuna.create_study(direction=direction, sampler=sampler)
        self.configs: dict[int, dict] = {}
        self.rows: dict[int, dict[int, dict]] = {}
        self.live: dict[int, object] = {}
        self.queue: list[Trial] = []
        for row in journal.ordered():
            cid = row["config_id"]
            self.configs[cid] = row["config"]
            self.rows.setdefault(cid, {})[row["seed"]] = row
        for cid, config in self.configs.items():
            if len(self.rows[cid]) == len(seeds):
                self._add_finished(config, self._value(cid))
            else:
                self.live[cid] = None  # its missing seeds run again, then it is added
                self.queue += self._expand(cid, config, skip=self.rows[cid])
        self.next_id = max(self.configs, default=-1) + 1
        self.done = sum(len(r) for r in self.rows.values())

    def _distribution(self, key, v):
        d = self.optuna.distributions
        if isinstance(v, list):
            return d.CategoricalDistribution([json.dumps(x) for x in v])
        if isinstance(v, Distribution):
            if v.kind == "int":
                return d.IntDistribution(v.low, v.high)
            return d.FloatDistribution(v.low, v.high, log=v.kind == "loguniform")
        raise InputError(
            f"space '{key}': Optuna takes lists and gradstep's uniform/loguniform/randint, "
            f"not {v!r}"
        )

    def _params(self, config: dict) -> dict:
        return {
            k: json.dumps(config[k])
            if isinstance(self.dists[k], self.optuna.distributions.CategoricalDistribution)
            else config[k]
            for k in self.dists
        }

    def _value(self, cid: int):
        values = [
            r["metrics"][self.metric]
            for r in self.rows[cid].values()
            if r["status"] == "ok" and self.metric in r["metrics"]
        ]
        return sum(values) / len(values) if values else None

    def _add_finished(self, config: dict, value) -> None:
        trial = self.optuna.trial.create_trial(
            params=self._params(config),
            distributions=self.dists,
            value=value,
            state=self.optuna.trial.TrialState.COMPLETE
            if value is not None
            else self.optuna.trial.TrialState.FAIL,
        )
        self.study.add_trial(trial)

    def _expand(self, cid: int, config: dict, skip=()) -> list[Trial]:
        n = len(self.seeds)
        return [
            Trial(cid * n + i, cid, config, s) for i, s in enumerate(self.seeds) if s not in skip
        ]

    def _propose(self) -> bool:
        """Ask Optuna for a configuration not tried yet; False when the space seems exhausted."""
        known = {_key(c): cid for cid, c in self.configs.items()}
        for _ in range(PROPOSALS):
            trial = self.study.ask(self.dists)
            config = {}
            for k, dist in self.dists.items():
                v = trial.params[k]
                is_cat = isinstance(dist, self.optuna.distributions.CategoricalDistribution)
                config[k] = json.loads(v) if is_cat else v
            twin = known.get(_key(config))
            if twin is None:
                cid = self.next_id
                self.next_id += 1
                self.configs[cid], self.rows[cid], self.live[cid] = config, {}, trial
                self.queue += self._expand(cid, config)
                return True
            value = self._value(twin) if twin not in self.live else None
            if value is not None:
                self.study.tell(trial, value)  # what that configuration scored: TPE learns
            else:
                self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
        return False

    def remaining(self) -> int:
        return self.total - self.done

    def next(self, k: int) -> list[Trial]:
        out = []
        while len(out) < k:
            if self.queue:
                out.append(self.queue.pop(0))
                continue
            if len(self.configs) >= self.n_trials or not self._propose():
                break
        return out

    def finished(self, row: dict) -> None:
        cid = row["config_id"]
        self.rows.setdefault(cid, {})[row["seed"]] = row
        self.done += 1
        if len(self.rows[cid]) < len(self.seeds):
            return
        trial, value = self.live.pop(cid, None), self._value(cid)
        if trial is None:
            self._add_finished(self.configs[cid], value)
        elif value is None:
            self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, value)
