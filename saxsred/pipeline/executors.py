"""Executors: where reduction tasks run (this process, or dask.distributed workers), with
the thread and memory settings that keep a worker as fast as a plain process."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from ..errors import InputError, ParameterError

THREAD_VARS = ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def pin_threads() -> None:
    """Set the thread-count variables to 1 (effective for libraries not yet loaded)."""
    for var in THREAD_VARS:
        os.environ[var] = "1"


_MALLOC_TUNED = False


def tune_malloc() -> None:
    """Undo the effect of dask's ``MALLOC_TRIM_THRESHOLD_`` on frame-sized arrays.

    dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536; setting it switches off
    glibc's dynamic mmap threshold, so every array above 128 kB (each frame, each mask and
    weight array of pyFAI) is a fresh mmap, page-faulted and zeroed, then unmapped: the
    reduction ran 1.5-2x slower in a worker than in a plain process (measured). A fixed
    32 MB mmap threshold (glibc's maximum) lets those buffers be reused from the heap; the
    trim threshold still returns freed memory at the top of the heap.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB): VmHWM of /proc/self/status where there is
    one (getrusage's ru_maxrss survives exec on Linux, so a spawned process would report its
    parent's peak at the time of the spawn when that was higher), else ru_maxrss."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def local_cluster(n_workers: int) -> Any:
    """A ``distributed.Client`` on a new LocalCluster of ``n_workers`` processes, one thread
    each, set up for reproducible and fast reduction; close ``client`` and ``client.cluster``.

    Workers get the thread-count variables pinned to 1, no MALLOC_TRIM_THRESHOLD_ (see
    :func:`tune_malloc`) and no statistical profiler (it samples the computing thread
    every 10 ms). Call it under ``if __name__ == "__main__":`` in scripts (workers are
    spawned and import the main module).
    """
    import dask
    from distributed import Client, LocalCluster

    if n_workers < 1:
        raise ParameterError(f"--workers {n_workers}: need at least 1 worker")
    pin_threads()  # inherited by the spawned worker processes
    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    env.update({v: 1 for v in THREAD_VARS})
    with dask.config.set(
        {
            "distributed.nanny.pre-spawn-environ": env,
            "distributed.worker.profile.enabled": False,
            "distributed.scheduler.worker-saturation": float("inf"),
        }
    ):
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            memory_limit=0,
            silence_logs=40,
        )
        return Client(cluster)


class SerialExecutor:
    """Runs tasks in this process, in order."""

    mode = "serial"
    nworkers = 1

    def map_unordered(self, fn: Callable, arg_iter: Iterable[tuple], window: int) -> Iterator[Any]:
        for args in arg_iter:
            yield fn(*args)

    def share(self, obj: Any) -> Any:
        return obj

    def worker_peak_rss_mb(self) -> dict[str, float]:
        return {}

    def close(self) -> None:
        pass


class DaskExecutor:
    """Runs tasks on dask.distributed workers with at most ``window`` tasks in flight."""

    def __init__(
        self, workers: int | None = None, scheduler: str | None = None, client: Any = None
    ) -> None:
        try:
            from distributed import Client
        except ImportError:  # pragma: no cover - dask is a dependency
            raise InputError(
                "dask.distributed is not installed; pip install 'dask[distributed]'"
            ) from None
        self._own: list[Any] = []
        if client is not None:
            self.client = client
            self.mode = f"client:{client.scheduler.address}"
        elif scheduler:
            try:
                self.client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise InputError(
                    f"cannot connect to the dask scheduler at {scheduler} ({type(exc).__name__}); "
                    "start it with 'dask scheduler' and check the address"
                ) from None
            self._own.append(self.client)
            self.mode = f"scheduler:{scheduler}"
        else:
            n = int(workers or 1)
            self.client = local_cluster(n)
            self._own += [self.client, self.client.cluster]
            self.mode = f"local:{n}"

    @property
    def nworkers(self) -> int:
        return max(1, len(self.client.nthreads()))

    def share(self, obj: Any) -> Any:
        # Sent once to each worker (arrays of dark/flat/mask), then referenced by every task.
        return self.client.scatter(obj, broadcast=True, hash=False)

    def map_unordered(self, fn: Callable, arg_iter: Iterable[tuple], window: int) -> Iterator[Any]:
        from distributed import as_completed

        it = iter(arg_iter)
        ac = as_completed()
        args_of: dict[Any, tuple] = {}

        def submit(args: tuple) -> None:
            fut = self.client.submit(fn, *args, pure=False)
            args_of[fut] = args
            ac.add(fut)

        for args in it:
            submit(args)
            if ac.count() >= window:
                break
        try:
            for fut in ac:
                res = task_result(fut, args_of.pop(fut))
                nxt = next(it, None)
                if nxt is not None:
                    submit(nxt)
                yield res
        finally:
            cancel_pending(self.client, args_of)

    def worker_peak_rss_mb(self) -> dict[str, float]:
        return workers_peak_rss_mb(self.client)

    def close(self) -> None:
        close_quietly(self._own)


def task_result(fut: Any, args: tuple) -> Any:
    """A finished future's result, or a :class:`TaskError` with the task's arguments when
    the task was lost (its worker died); the future is released."""
    try:
        res = fut.result()
    except Exception as exc:
        res = TaskError(exc, args)
    fut.release()
    return res


def cancel_pending(client: Any, args_of: dict[Any, tuple]) -> None:
    """Cancel the futures still in flight (a run interrupted or ended early)."""
    if args_of:
        with contextlib.suppress(Exception):
            client.cancel(list(args_of))
        args_of.clear()


def workers_peak_rss_mb(client: Any) -> dict[str, float]:
    """Each worker's peak memory (MB) by address; empty when the cluster cannot say."""
    try:
        res = client.run(peak_rss_mb)
    except Exception:
        return {}
    return {str(k): round(float(v), 1) for k, v in sorted(res.items())}


def close_quietly(objs: Iterable[Any]) -> None:
    """Close each of ``objs`` (clients, clusters), going on past one that fails."""
    for obj in objs:
        with contextlib.suppress(Exception):
            obj.close()


def import_modules(names: Sequence[str]) -> None:
    """Import ``names`` (run on workers as they start)."""
    import importlib

    for name in names:
        importlib.import_module(name)


class LocalExecutor:
    """``--workers N`` on this machine: this process and N - 1 dask worker processes.

    This process starts working at once, on the tasks as they come, while the local
    cluster starts in the background (spawned workers import and build their engines for
    a few seconds); once it is up, tasks also go to its workers, at most two each in
    flight, so that no worker holds a queue when this process runs out of tasks. The
    start-up is then hidden behind work instead of added to it. ``--workers 1`` is this
    process alone. ``work_here = False`` (a class switch for tests) sends every task to
    the cluster's workers, as ``--scheduler`` does.
    """

    work_here = True
    #: modules the workers import as soon as they are up, while this process works (the
    #: reduction's imports are half of a worker's start-up; its first task then only builds
    #: its engine)
    preload = ("saxsred.pipeline.units", "saxsred.reduce", "pyFAI.integrator.azimuthal")

    def __init__(self, workers: int) -> None:
        import threading

        n = int(workers)
        if n < 1:
            raise ParameterError(f"--workers {n}: need at least 1 worker")
        self.n = n
        self.mode = f"local:{n}"
        self.client: Any = None
        self._error: BaseException | None = None
        self._scattered: dict[int, Any] = {}
        self._ready = threading.Event()
        self._closed = False
        self._thread = None
        if n > 1:
            self._thread = threading.Thread(target=self._start, name="saxsred-cluster", daemon=True)
            self._thread.start()
        else:
            self._ready.set()

    def _start(self) -> None:
        try:
            client = local_cluster(self.n - 1)
            with contextlib.suppress(Exception):  # only a head start: a failure shows in the tasks
                client.run(import_modules, self.preload)
            if self._closed:
                close_quietly((client, client.cluster))
                return
            self.client = client
        except BaseException as exc:  # this process goes on alone, and the report says why
            self._error = exc
            self.mode = f"local:{self.n} (the cluster did not start: {type(exc).__name__}; ran in this process)"
        finally:
            self._ready.set()

    @property
    def nworkers(self) -> int:
        return self.n

    def share(self, obj: Any) -> Any:
        return obj  # scattered to the workers when the cluster is up (``_remote``)

    def _remote(self, obj: Any) -> Any:
        key = id(obj)
        if key not in self._scattered:
            self._scattered[key] = (obj, self.client.scatter(obj, broadcast=True, hash=False))
        return self._scattered[key][1]

    def map_unordered(self, fn: Callable, arg_iter: Iterable[tuple], window: int) -> Iterator[Any]:
        """Results of ``fn(items, shared)`` for each task ``(items, shared)``, in the order
        they finish. ``items`` is a list that ``fn`` handles item by item (this process
        runs its tasks one item at a time, feeding the cluster between items); ``shared``
        is what :meth:`share` returned (scattered once to the workers). ``window`` is
        not used: the cluster holds at most two tasks per worker."""
        it = iter(arg_iter)
        ac = None
        args_of: dict[Any, tuple] = {}
        limit = 2 * (self.n - 1)  # in flight on the cluster: one running, one queued each

        def feed() -> None:
            while len(args_of) < limit:
                args = next(it, None)
                if args is None:
                    return
                remote = tuple(
                    self._remote(a) if i == len(args) - 1 else a for i, a in enumerate(args)
                )
                fut = self.client.submit(fn, *remote, pure=False)
                args_of[fut] = args
                ac.add(fut)

        def collect(block: bool) -> Iterator[Any]:
            for fut in ac.next_batch(block=block) if (block or ac.has_ready()) else ():
                yield task_result(fut, args_of.pop(fut))

        def serve() -> Iterator[Any]:
            # the cluster's turn: used from when it is up; its finished tasks, then refill
            nonlocal ac
            if ac is None and self._ready.is_set() and self.client is not None:
                ac = as_completed()
            if ac is not None:
                yield from collect(False)
                feed()

        from distributed import as_completed

        if not self.work_here:
            self._ready.wait()
        try:
            while True:
                yield from serve()
                if ac is not None and not self.work_here:
                    if not args_of:
                        break
                    yield from collect(True)
                    continue
                args = next(it, None)
                if args is None:
                    break
                # this process is one of the workers: a task's items one at a time, so that
                # the cluster is fed between them (its workers never wait on a long task here)
                items, rest = args[0], args[1:]
                for item in items:
                    yield fn([item], *rest)
                    yield from serve()
            while ac is not None and args_of:
                yield from collect(True)
        finally:
            cancel_pending(self.client, args_of)

    def worker_peak_rss_mb(self) -> dict[str, float]:
        out = {"this process": round(peak_rss_mb(), 1)}
        if self.client is not None:
            out.update(workers_peak_rss_mb(self.client))
        return out

    def close(self) -> None:
        self._closed = True
        if self._thread is not None:
            self._thread.join()
        if self.client is not None:
            close_quietly((self.client, self.client.cluster))


class TaskError:
    """A task that returned no result (its worker died), with the arguments it was given."""

    def __init__(self, exc: BaseException, args: tuple = ()) -> None:
        self.exc = exc
        self.args = args


def make_executor(workers: int | None, scheduler: str | None, client: Any = None):
    if client is None and scheduler is None and workers is None:
        return SerialExecutor()
    if client is None and scheduler is None:
        return LocalExecutor(workers)
    return DaskExecutor(workers, scheduler, client)


def chunks(items: Sequence[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def guided_chunks(
    items: Sequence[tuple[str, str]], nworkers: int, largest: int = 16
) -> Iterator[list[tuple[str, str]]]:
    """Tasks of decreasing size ("guided" scheduling): about 1/(2 N) of what is left each.

    Large tasks at the start amortise dask's ~1 ms per task; single files at the end keep
    the workers finishing together (with fixed tasks of k files a worker could sit idle
    for up to k frame times while the other finishes its last task).
    """
    i, n = 0, len(items)
    while i < n:
        size = max(1, min(largest, (n - i) // (2 * nworkers)))
        yield list(items[i : i + size])
        i += size
