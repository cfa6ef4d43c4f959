"""Executors: where a sweep's jobs run. ``local`` (a pool of worker processes on this machine, no Ray) and
``ray`` (one Ray task per job on a Ray cluster). Both call :func:`edgekit.sweep.jobs.execute` and hand each
result to the driver's callback as it arrives; the driver writes everything under DIR.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import tempfile
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Protocol

from ..errors import EdgekitError, RecipeError
from ..raylib import import_ray
from ..registry import Registry
from .jobs import ERROR, Job
from .worker import execute

OnResult = Callable[[Job, dict[str, Any]], None]


class Executor(Protocol):
    name: str

    def run(self, jobs: list[Job], out: Path, on_result: OnResult) -> None: ...


ExecutorFactory = Callable[..., Executor]
EXECUTORS: Registry[ExecutorFactory] = Registry("executor")


def get_executor(name: str, **options: Any) -> Executor:
    return EXECUTORS.get(name)(**options)


def failed(job: Job, error: str) -> dict[str, Any]:
    """The result of a job whose worker never returned one (it crashed, or the scheduler refused it)."""
    return {"id": job.id, "status": ERROR, "error": error, "log": f"{error}\n", "seconds": None}


def cpus_here() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# ----------------------------------------------------------------------------------------------------------------
# local: one fresh process per job


def _child(payload: dict[str, Any], conn: Connection) -> None:
    """A worker process: one job. Its file descriptors 1 and 2 go to a file, so what runtimes and converters print
    from native code lands in the job's log, not on the sweep's terminal."""
    with tempfile.TemporaryFile() as native:
        os.dup2(native.fileno(), 1)
        os.dup2(native.fileno(), 2)
        result = execute(payload)
        sys.stdout.flush()
        sys.stderr.flush()
        native.seek(0)
        text = native.read().decode(errors="replace")
    if text.strip():
        result["log"] = result.get("log", "") + "\n--- native output (runtimes, converters) ---\n" + text
    conn.send(result)
    conn.close()


class LocalExecutor:
    """At most ``workers`` jobs at once, each in its own spawned process (a fresh interpreter: no state leaks
    between jobs, and a job that crashes its process is one error row, not a broken pool). A job bound to a
    device waits while another job holds that device. Default size: this machine's CPUs / the job's num_cpus."""

    name = "local"

    def __init__(self, workers: int | None = None, address: str | None = None, **_: Any):
        if address is not None:
            raise RecipeError("--address is for --executor ray; the local executor runs on this machine")
        self.workers = workers

    def size(self, jobs: list[Job]) -> int:
        if self.workers:
            return self.workers
        per_job = max((j.resources.num_cpus for j in jobs), default=1.0)
        return max(1, int(cpus_here() // max(per_job, 1.0)))

    def run(self, jobs: list[Job], out: Path, on_result: OnResult) -> None:
        parallel = next((j for j in jobs if j.data_parallel), None)
        if parallel is not None:
            raise RecipeError(
                f"job {parallel.id}: resources.train_workers trains over Ray Train workers; "
                "run the sweep with --executor ray (or set train_workers: 0)"
            )
        ctx = mp.get_context("spawn")
        pending = list(jobs)
        running: dict[Connection, tuple[Any, Job]] = {}
        size = self.size(jobs)
        try:
            self._loop(ctx, pending, running, size, out, on_result)
        finally:  # interrupted (Ctrl-C) or the callback failed: no orphan workers
            for proc, _ in running.values():
                proc.terminate()
                proc.join()

    def _loop(self, ctx: Any, pending: list[Job], running: dict, size: int, out: Path, on_result: OnResult) -> None:
        while pending or running:
            busy = {j.device.name for _, j in running.values() if j.device is not None}
            while len(running) < size:
                job = next((j for j in pending if j.device is None or j.device.name not in busy), None)
                if job is None:
                    break
                pending.remove(job)
                if job.device is not None:
                    busy.add(job.device.name)
                recv, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_child, args=(job.payload(out), send), name=f"edgekit-{job.id}")
                proc.start()
                send.close()  # the child holds the only writer: EOF here means it died
                running[recv] = (proc, job)
            for conn in wait(list(running)):
                proc, job = running.pop(conn)  # type: ignore[index]
                try:
                    result = conn.recv()
                except EOFError:
                    proc.join()
                    result = failed(job, f"worker process exited with code {proc.exitcode} before returning")
                conn.close()
                proc.join()
                on_result(job, result)


EXECUTORS.add("local", LocalExecutor)


# ----------------------------------------------------------------------------------------------------------------
# ray: one task per job


def _ray_job(payload: dict[str, Any], driver_node: str | None) -> dict[str, Any]:
    import ray

    here = ray.get_runtime_context().get_node_id()
    result = execute(payload, ship=driver_node != here)  # another node: the run comes back as an archive
    result["node"] = here
    return result


def worker_env() -> dict[str, str]:
    """Environment for Ray workers: the driver's PYTHONPATH (so workers import the same edgekit, e.g. a
    source checkout), offline hubs and the data cache."""
    keys = ("PYTHONPATH", "HF_HUB_OFFLINE", "EDGEKIT_DATA")
    return {k: os.environ[k] for k in keys if k in os.environ}


class RayExecutor:
    """Each job a Ray task declaring the job's resources (num_cpus, num_gpus, memory) and, for a device-bound
    job, one unit of the custom resource ``device:<name>``: the node the device is attached to declares it
    (``ray start --resources='{"device:pixel8": 1}'``), so each device runs one job at a time, there.

    ``address`` None starts a local cluster with this machine's CPUs and one unit of every sweep device (they
    are attached here); ``auto`` or ``ray://HOST:PORT`` joins an existing one. ``workers`` caps the jobs in
    flight (default: as many as the cluster's resources allow). Results come back to the driver, which writes
    them; a run made on another node is returned as an archive."""

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None, **_: Any):
        self.workers, self.address = workers, address

    def run(self, jobs: list[Job], out: Path, on_result: OnResult) -> None:
        ray = import_ray()
        started = False
        if not ray.is_initialized():
            devices = {j.device.resource: 1.0 for j in jobs if j.device is not None}
            local = {"resources": devices, "include_dashboard": False} if self.address is None else {}
            try:
                ray.init(address=self.address, runtime_env={"env_vars": worker_env()}, log_to_driver=False, **local)
            except ConnectionError as exc:
                why = str(exc).splitlines()[0].rstrip(".")
                raise EdgekitError(
                    f"cannot reach the Ray cluster at --address {self.address}: {why}; start it with "
                    "`ray start --head` (or leave out --address to start one here)"
                ) from None
            started = True
        try:
            self._run(ray, jobs, out, on_result)
        finally:
            if started:
                ray.shutdown()

    def _run(self, ray: Any, jobs: list[Job], out: Path, on_result: OnResult) -> None:
        client = bool(self.address and self.address.startswith("ray://"))
        driver = None if client else ray.get_runtime_context().get_node_id()
        have = ray.cluster_resources()
        task = ray.remote(_ray_job)
        pending, refs = list(jobs), {}
        limit = self.workers or len(jobs)
        try:
            while pending or refs:
                while pending and len(refs) < limit:
                    job = pending.pop(0)
                    missing = [k for k in self.resources(job) if k not in have]
                    if missing:  # Ray would wait forever for a resource no node has
                        on_result(job, failed(job, no_node(missing[0])))
                        continue
                    refs[task.options(**self.options(job)).remote(job.payload(out), driver)] = job
                if not refs:
                    break
                (ready,), _ = ray.wait(list(refs), num_returns=1)
                job = refs.pop(ready)
                try:
                    result = ray.get(ready)
                except ray.exceptions.RayError as exc:  # the worker died, or Ray could not run the task
                    result = failed(job, f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}")
                on_result(job, result)
        finally:  # interrupted: leave no task running on the cluster
            for ref in refs:
                ray.cancel(ref, force=True)

    @staticmethod
    def resources(job: Job) -> dict[str, float]:
        """The custom resources of a job (a device-bound job: one unit of its device)."""
        return {job.device.resource: 1.0} if job.device is not None else {}

    def options(self, job: Job) -> dict[str, Any]:
        r = job.resources
        gpus = 0.0 if job.data_parallel else r.num_gpus  # its train workers hold the GPUs
        opts: dict[str, Any] = {"num_cpus": r.num_cpus, "num_gpus": gpus, "max_retries": 0}
        if r.memory_gb is not None:
            opts["memory"] = int(r.memory_gb * 2**30)
        if self.resources(job):
            opts["resources"] = self.resources(job)
        return opts


def no_node(resource: str) -> str:
    return (
        f"no node of the Ray cluster declares the resource '{resource}'; start the node the device is attached to "
        f"with: ray start --address HEAD:6379 --resources='{{\"{resource}\": 1}}'"
    )


EXECUTORS.add("ray", RayExecutor)
