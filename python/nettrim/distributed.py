"""Running the parallel scheme on other processes or machines (docs: "Beyond one machine").

The schemes hand their layer jobs to an executor: anything with ``submit(fn, *args)``
returning :class:`concurrent.futures.Future` objects (a ``ThreadPoolExecutor``, a
``ProcessPoolExecutor``), or a ``dask.distributed.Client``, which this module adapts:

- every job's future is a ``concurrent.futures.Future``, so the schemes wait on any executor
  the same way;
- the large arguments (a layer's inputs) move once: :meth:`DaskExecutor.share` scatters an
  array to the cluster, to every worker when several jobs need it (the blocks of one layer)
  and to one worker otherwise, and jobs take the scattered future instead of the array;
- a worker lost mid-run is Dask's business: its tasks are run again elsewhere, and since a
  job is a pure function of its arguments the result is the same.

Dask is optional (``pip install "nettrim[dask]"``); nothing here imports it until asked to.
"""
from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from typing import Optional

import numpy as np

from .errors import InvalidArgument, InvalidArgumentType


def is_dask_client(executor) -> bool:
    """True for a ``dask.distributed.Client`` (checked without importing Dask)."""
    return type(executor).__name__ == "Client" and type(executor).__module__.startswith("distributed")


_SCATTER_TRIES = 5


class Shared:
    """An array scattered to the cluster, and the array itself, to scatter it again if the
    workers holding it are lost (Dask cannot recompute scattered data)."""

    def __init__(self, client, array, broadcast):
        self.client, self.array, self.broadcast = client, array, broadcast
        self.lock = threading.Lock()
        self.future = None
        self.scatters = 0

    def current(self):
        """The future of the array on the cluster, scattered again when it was lost."""
        with self.lock:
            if self.future is None or self.future.status != "finished":
                for attempt in range(_SCATTER_TRIES):
                    try:
                        self.future = self.client.scatter(self.array, broadcast=self.broadcast, hash=False)
                        break
                    except OSError:     # the worker chosen was lost meanwhile (CommClosedError): another
                        if attempt == _SCATTER_TRIES - 1:
                            raise
                        time.sleep(0.5 * (attempt + 1))
                self.scatters += 1
            return self.future


class DaskExecutor:
    """A ``dask.distributed.Client`` seen as a ``concurrent.futures``-style executor."""

    def __init__(self, client, retries: int = 3):
        self.client, self.retries = client, retries
        self.shared = []

    @property
    def scattered_bytes(self):
        """What share() sent (a broadcast counts once per worker), for the benchmark's transfer figure."""
        workers = max(1, len(self.client.scheduler_info()["workers"]))
        return sum(s.array.nbytes * s.scatters * (workers if s.broadcast else 1) for s in self.shared)

    def share(self, array: np.ndarray, *, broadcast: bool = False) -> Shared:
        """The array on the cluster, scattered once (to every worker with ``broadcast``, when
        several jobs need it); pass the returned object to :meth:`submit` in its place."""
        shared = Shared(self.client, array, broadcast)
        shared.current()
        self.shared.append(shared)
        return shared

    def submit(self, fn, *args) -> cf.Future:
        local: cf.Future = cf.Future()
        local.set_running_or_notify_cancel()
        self._launch(local, fn, args, self.retries)
        return local

    def _launch(self, local, fn, args, retries):
        inputs = [a.current() if isinstance(a, Shared) else a for a in args]
        # pure=False: two jobs with equal arguments are still two jobs (Dask would merge them).
        remote = self.client.submit(fn, *inputs, pure=False)
        local.remote = remote                   # keeps the Dask future (and its task) alive

        def settle(done):
            try:
                local.set_result(done.result())
            except BaseException:
                # A worker lost with the only copy of a scattered input cancels the job: scatter
                # it again and resubmit.  Any other error is the job's own, raised on the caller's side.
                lost = any(isinstance(a, Shared) and a.future.status != "finished" for a in args)
                if retries > 0 and (lost or done.status == "cancelled"):
                    try:
                        self._launch(local, fn, args, retries - 1)
                        return
                    except BaseException as again:
                        error = again
                local.set_exception(error)

        remote.add_done_callback(settle)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False):
        """The client belongs to the caller: only the scattered data is released."""
        for s in self.shared:
            if s.future is not None:
                s.future.release()
        self.shared = []


def as_executor(executor):
    """The executor the schemes use for ``executor``: a Dask client adapted, any other checked
    (:class:`CheckedExecutor`); None stays None."""
    if executor is not None and is_dask_client(executor):
        return DaskExecutor(executor)
    return None if executor is None else CheckedExecutor(executor)


class CheckedExecutor:
    """A user's ``concurrent.futures``-style executor whose failure to take a job is an error
    naming ``executor`` (a shut-down pool raises a bare RuntimeError; a ``submit`` that returns
    no future would fail later, far from its cause).  ``shutdown`` leaves the user's executor
    running: it is theirs."""

    def __init__(self, executor):
        self.executor = executor

    def submit(self, fn, *args, **kwargs):
        try:
            future = self.executor.submit(fn, *args, **kwargs)
        except RuntimeError as e:
            raise InvalidArgument(f"executor: it takes no more jobs ({e}); was it shut down?") from None
        if not callable(getattr(future, "result", None)):
            raise InvalidArgumentType(f"executor: its submit returned {type(future).__name__}, expected a future "
                                      "(with result())")
        return future

    def shutdown(self, wait=True, **kwargs):
        pass


def connect(scheduler: str, *, workers: Optional[int] = None, timeout: float = 10.0):
    """A Dask client for ``scheduler``: an address (``tcp://host:port``) or ``"local"`` for a
    cluster of ``workers`` processes on this machine (one thread each: the engine's own
    threads do the work).  Raises InvalidArgument when the scheduler cannot be reached."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as error:
        raise ImportError('the Dask executor needs Dask: pip install "nettrim[dask]"') from error
    if scheduler == "local":
        cluster = LocalCluster(n_workers=workers or 1, threads_per_worker=1, processes=True,
                               dashboard_address=":0", host="127.0.0.1")
        client = Client(cluster)
        client.owns_cluster = cluster
        return client
    if workers is not None:
        raise InvalidArgument("workers: a number of local worker processes goes with scheduler 'local', "
                              f"not with the cluster at {scheduler}")
    try:
        return Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as error:
        raise InvalidArgument(f"scheduler: could not connect to {scheduler!r} within {timeout:g} s ({error})") from None


def disconnect(client):
    """Close a client made by :func:`connect` (and its local cluster)."""
    cluster = getattr(client, "owns_cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()
