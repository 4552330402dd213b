"""Where trials run: in this process, a local process pool, Dask, or any ``Executor``.

Everything goes through :class:`concurrent.futures.Executor`'s ``submit``; Dask is reached via
``Client.get_executor()``, so the runner never imports Dask and a user may pass any executor.

- ``executor=None``: a process pool of ``workers`` processes (default: the machine's cores);
  ``workers=1`` runs the trials here, one after the other, with no pool at all.
- ``"dask"``: an embedded ``LocalCluster`` (one thread per worker process).
- ``"tcp://host:port"``: an existing Dask scheduler (``dask scheduler``).
- an ``Executor`` object: used as given, and not shut down.

The data is sent once per worker, not once per trial: a process pool gets it through its
initializer, Dask through ``scatter(broadcast=True)``. A pool whose worker process dies (killed,
out of memory) is restarted and its unfinished trials run again, up to :data:`ATTEMPTS` times
each; Dask reschedules a dead worker's tasks on the others itself.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import pickle
import sys
import uuid

from gradstep.errors import InputError
from gradstep.sweep.tasks import DataToken, install_data, run_trial

FORK_UNSAFE = ("jax", "tensorflow")  # loaded in the driver: no fork (their threads deadlock)
ATTEMPTS = 3  # tries of a trial whose worker process died, as Dask's allowed-failures


def _single_thread_blas() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def _die_with(parent: int) -> None:
    """Linux: this worker gets SIGKILL when the sweep that forked it dies (killed with -9, out of
    memory), instead of waiting forever on a queue nobody writes to."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def _worker_init(token: str, data, parent: int | None) -> None:
    if parent is not None and sys.platform.startswith("linux"):
        _die_with(parent)  # forked by the driver itself (not by a forkserver)
    _single_thread_blas()  # two workers on two cores: a second BLAS thread each only contends
    install_data(token, data)


class Inline:
    """Trials run here, in order: ``workers=1``, tests and debugging (exceptions show)."""

    name = "serial (this process)"
    workers = 1

    def __init__(self, data):
        self.data = data

    def submit(self, task, trial) -> cf.Future:
        f = cf.Future()
        f.set_result(run_trial(task, trial, self.data))
        return f

    def restart(self) -> bool:
        return False

    def close(self) -> None:
        pass


class Pooled:
    """Any executor: a process pool we own (restartable), Dask's, or the user's."""

    def __init__(self, make, data, name: str, workers: int, owned, scatter=None, close=None):
        self._make, self.name, self.workers, self._owned = make, name, workers, owned
        self._close = close
        self.executor = make()
        self.data = scatter(data) if scatter else data

    def submit(self, task, trial) -> cf.Future:
        return self.executor.submit(run_trial, task, trial, self.data)

    def restart(self) -> bool:
        """Replace a broken process pool; False if it is not ours to replace."""
        if not self._owned:
            return False
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = self._make()
        return True

    def close(self) -> None:
        if self._owned:
            self.executor.shutdown(wait=True, cancel_futures=True)
        if self._close:
            self._close()


def _mp_context():
    import multiprocessing as mp

    # fork where the system has it (Linux): workers start as copies of the driver, at once, with
    # the table already in memory, and a script needs no `if __name__ == "__main__":` guard
    # (spawn re-runs an unguarded script in every worker). The pool forks all its workers when
    # it is made, before any of its threads start.
    # A library whose own threads make a fork unsafe (JAX says so at every fork) gets the
    # forkserver instead.
    methods = mp.get_all_start_methods()
    unsafe = any(m in sys.modules for m in FORK_UNSAFE)
    if "fork" in methods and not unsafe:
        return mp.get_context("fork")
    return mp.get_context("forkserver" if "forkserver" in methods else "spawn")


def process_pool(data, workers: int | None, task) -> Pooled:
    workers = workers or os.cpu_count() or 1
    try:
        pickle.dumps(task)
    except Exception as e:
        raise InputError(
            f"the train function cannot be sent to worker processes ({e}); define it at the "
            "top level of a module (not a lambda or a nested function), or pass workers=1"
        ) from None
    token = uuid.uuid4().hex

    def make():
        context = _mp_context()
        pool = cf.ProcessPoolExecutor(
            workers,
            mp_context=context,
            initializer=_worker_init,
            initargs=(token, data, os.getpid() if context.get_start_method() == "fork" else None),
        )
        pool.submit(os.getpid).result()  # fork every worker now, before the driver has threads
        return pool

    return Pooled(make, DataToken(token), f"process pool ({workers} workers)", workers, True)


def dask(data, address: str | None, workers: int | None) -> Pooled:
    """A Dask client on ``address`` (a scheduler), or on a new LocalCluster when None."""
    try:
        import distributed
    except ImportError:
        raise InputError(
            "Dask is not installed: pip install 'gradstep[dask]' (or use the process pool)"
        ) from None
    import logging

    cluster = None
    if address is None:
        n = workers or os.cpu_count() or 1
        cluster = distributed.LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            host="127.0.0.1",
            silence_logs=logging.ERROR,
        )
        client = distributed.Client(cluster)
        name = f"Dask LocalCluster ({n} workers)"
    else:
        try:
            client = distributed.Client(address, timeout=5)
        except (OSError, TimeoutError, ValueError) as e:
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise InputError(f"cannot reach the Dask scheduler at {address}: {why}") from None
        n = len(client.scheduler_info().get("workers", {}))
        name = f"Dask scheduler {address} ({n} workers at start)"

    def close():
        client.close()
        if cluster is not None:
            cluster.close()

    try:
        pool = Pooled(
            lambda: client.get_executor(pure=False),
            data,
            name,
            max(n, 1),
            owned=False,
            scatter=lambda d: client.scatter(d, broadcast=True, hash=False),
            close=close,
        )
    except BaseException:
        close()
        raise
    return pool


def make_pool(executor, data, workers: int | None, task):
    """The pool for ``executor`` as :func:`gradstep.sweep.sweep` takes it."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)):
        raise InputError(f"workers must be a positive integer, got {workers!r}")
    if workers is not None and workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    if executor is None:
        if workers == 1:
            return Inline(data)
        return process_pool(data, workers, task)
    if isinstance(executor, str):
        if executor in ("serial", "inline"):
            return Inline(data)
        if executor in ("local", "dask"):
            return dask(data, None, workers)
        if "://" in executor:
            return dask(data, executor, workers)
        raise InputError(
            f"executor {executor!r}: give 'dask' (a local cluster), a scheduler address "
            "tcp://HOST:PORT, or an Executor"
        )
    if not isinstance(executor, cf.Executor) and not hasattr(executor, "submit"):
        raise InputError(f"executor must be a concurrent.futures.Executor, got {executor!r}")
    workers = workers or getattr(executor, "_max_workers", None) or os.cpu_count() or 1
    return Pooled(lambda: executor, data, type(executor).__name__, workers, owned=False)


def drive(pool, task, planner):
    """Keep ``2 x workers`` trials in flight; yield each finished trial's row.

    A process pool whose worker dies breaks with every trial in flight, and which trial killed
    it is unknown. Those trials run again one at a time: a crash then names its trial, which
    gets ATTEMPTS solo tries before it is recorded as failed; the others never lose a try."""
    window = 2 * max(1, pool.workers)
    inflight: dict[cf.Future, object] = {}
    suspects: list = []
    crashes: dict[int, int] = {}

    def start(trial):
        inflight[pool.submit(task, trial)] = trial

    while True:
        if suspects:
            if not inflight:
                start(suspects.pop(0))
        else:
            for trial in planner.next(window - len(inflight)):
                start(trial)
        if not inflight:
            return
        solo = len(inflight) == 1  # a break now names its trial
        done, _ = cf.wait(list(inflight), return_when=cf.FIRST_COMPLETED)
        broken = []
        for f in [f for f in inflight if f in done]:  # in the order they were started
            trial = inflight.pop(f)
            try:
                yield f.result()
            except cf.BrokenExecutor:
                broken.append(trial)
            except Exception as e:  # Dask's KilledWorker after its own retries, a cancel
                yield failed_row(trial, f"{type(e).__name__}: {e}")
        if not broken:
            continue
        lost = broken + list(inflight.values())  # all in flight on the pool went down with it
        inflight.clear()
        if not pool.restart():
            for trial in lost:
                yield failed_row(trial, "the executor broke while running it")
            continue
        if len(lost) == 1 and solo:
            trial = lost[0]
            crashes[trial.trial_id] = crashes.get(trial.trial_id, 0) + 1
            if crashes[trial.trial_id] >= ATTEMPTS:
                yield failed_row(trial, f"its worker process died ({ATTEMPTS} tries)")
                continue
        suspects += lost


def failed_row(trial, message: str) -> dict:
    return {
        "trial_id": trial.trial_id,
        "config_id": trial.config_id,
        "config": trial.config,
        "seed": trial.seed,
        "status": "failed",
        "metrics": {},
        "message": message,
        "seconds": 0.0,
        "worker": "",
    }
