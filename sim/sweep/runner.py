"""Running a sweep's points: on a Dask cluster, or one after another in this process.

:func:`run_sweep` submits every point without a finished record (:mod:`sim.sweep.store`)
as one task of :func:`sim.sweep.measures.run_point`: a model point, an RTL run or one
synthesis with one seed. Without a scheduler address it starts a ``LocalCluster`` of
worker processes (one thread each, as many as the machine has cores unless told);
``scheduler="tcp://HOST:8786"`` sends the same tasks to a running cluster, whose workers
need this package installed at the same revision. Each record is written as its task
finishes; a task whose error is raised records that error's first line, and a task whose
worker died more often than the scheduler allows (``distributed.scheduler.allowed-failures``)
records that, so no point goes missing. One progress line on stderr (total, done, failed,
running, ETA) is rewritten as results come back.
"""

import os
import time
import traceback
from dataclasses import dataclass

from .measures import run_point, source_hash
from .spec import Point
from .store import ResultStore, record_key

__all__ = ["run_sweep", "SweepRun", "measure_task"]


@dataclass
class SweepRun:
    """What one run did: points in the spec, already finished, run now, failed now."""

    total: int
    skipped: int
    ran: int
    failed: int
    seconds: float


def _one_line(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip()
    return text.splitlines()[0][:500] if text else type(e).__name__


def measure_task(point: dict) -> dict:
    """The task: a point's result and wall time, or its error in one line."""
    start = time.monotonic()
    try:
        result, status, error = run_point(point), "ok", None
    except Exception as e:                       # recorded, and the sweep goes on
        result, status, error = None, "failed", _one_line(e)
        if os.environ.get("NNACCEL_DEBUG"):
            traceback.print_exc()
    return {"status": status, "error": error, "result": result,
            "seconds": round(time.monotonic() - start, 3), "host": os.uname().nodename,
            "pid": os.getpid()}


class _Progress:
    def __init__(self, total: int, stream):
        self.total, self.stream = total, stream
        self.done = self.failed = 0
        self.start = time.monotonic()
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.shown = 0.0

    def update(self, status: str, final: bool = False) -> None:
        if status:
            self.done += 1
            self.failed += status != "ok"
        if self.stream is None:
            return
        elapsed = time.monotonic() - self.start
        left = self.total - self.done
        eta = elapsed / self.done * left if self.done else float("nan")
        eta_text = "--" if eta != eta else time.strftime("%H:%M:%S", time.gmtime(eta))
        line = (f"sweep: {self.done}/{self.total} done, {self.failed} failed, "
                f"{min(left, self.total)} to go, {elapsed:.0f} s, ETA {eta_text}")
        if self.tty:
            self.stream.write("\r" + line + "\033[K" + ("\n" if final else ""))
        elif final or elapsed - self.shown >= 5:
            # A log, not a terminal: a line every 5 s at most.
            self.stream.write(line + "\n")
            self.shown = elapsed
        self.stream.flush()


def _record(point: Point, key: str, source: str, outcome: dict) -> dict:
    return {"key": key, "source": source, "point": point.to_dict(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), **outcome}


def run_sweep(points, results, *, scheduler: str | None = None, workers: int | None = None,
              serial: bool = False, context: dict | None = None, progress=None,
              on_record=None) -> SweepRun:
    """Measure the ``points`` (:class:`~sim.sweep.spec.Point`) that ``results`` (a path)
    has no finished record of, appending a record for each.

    ``serial`` runs them in this process, in order (no Dask). ``progress``: a stream for
    the progress line (``None``: quiet). ``on_record`` is called with
    each record after it is stored (the tests interrupt a sweep from it).
    """
    store = ResultStore(results)
    start = time.monotonic()
    sources = {(p.measure, p.engine): source_hash(p.measure, engine=p.engine)
               for p in {(p.measure, p.engine): p for p in points}.values()}
    keyed, seen = [], set()
    for p in points:
        key = record_key(p.ident(), sources[p.measure, p.engine])
        if key not in seen:
            seen.add(key)
            keyed.append((p, key))
    done = store.finished()
    # The first seed of every synthesis before any second one: a sweep cut short already
    # knows what fits and how fast.
    todo = sorted(((p, k) for p, k in keyed if k not in done),
                  key=lambda pk: (pk[0].measure == "synth", pk[0].seed))
    if context is not None:
        store.append({"sweep": context})
    bar = _Progress(len(todo), progress)
    if progress is not None:
        progress.write(f"sweep: {len(keyed)} points, {len(keyed) - len(todo)} already "
                       f"finished, {len(todo)} to run\n")

    def finish(point, key, outcome):
        record = _record(point, key, sources[point.measure, point.engine], outcome)
        store.append(record)
        bar.update(record["status"])
        if on_record is not None:
            on_record(record)

    if todo and serial:
        for point, key in todo:
            finish(point, key, measure_task(point.to_dict()))
    elif todo:
        _run_dask(todo, finish, scheduler, workers)
    if todo:
        bar.update("", final=True)
    return SweepRun(len(keyed), len(keyed) - len(todo), bar.done, bar.failed,
                    time.monotonic() - start)


def _run_dask(todo, finish, scheduler, workers) -> None:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ModuleNotFoundError:
        raise ValueError("nnaccel sweep needs dask.distributed: pip install -e '.[cluster]' "
                         "(or run with --serial)") from None
    cluster = None
    if scheduler:
        client = Client(scheduler, timeout="30s")
    else:
        n = workers or os.cpu_count() or 1
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=":0")
        client = Client(cluster)
    try:
        by_future, run = {}, f"{os.getpid()}-{time.time_ns()}"
        for point, key in todo:
            future = client.submit(measure_task, point.to_dict(), key=f"sweep-{key}-{run}",
                                   pure=False)
            by_future[future] = (point, key)
        for future in as_completed(by_future):
            point, key = by_future.pop(future)
            try:
                outcome = future.result()
            except Exception as e:               # the worker died, or the task was lost
                outcome = {"status": "failed", "error": _one_line(e), "result": None,
                           "seconds": None}
            finish(point, key, outcome)
    finally:
        for future in list(by_future):
            future.cancel()
        client.close()
        if cluster is not None:
            cluster.close()
