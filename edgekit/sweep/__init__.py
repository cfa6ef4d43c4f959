"""``edgekit sweep SWEEP.yaml --out DIR``: many runs (models x targets x precisions x devices), one report.

DIR/<job-id>/ is each job's run directory (as ``edgekit run`` writes it), DIR/jobs/<job-id>.json its result,
DIR/logs/<job-id>.log its log, DIR/sweep-spec.json the sweep file as run, and DIR/sweep.{json,md,html} the merged
report, rewritten as each job finishes.
A re-run skips the jobs already finished (and, unless ``retry_failed``, those that failed); the executor
(``local`` or ``ray``, see :mod:`edgekit.sweep.executors`) only decides where jobs run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import to_dict
from ..errors import OutputExistsError
from ..status import Status
from .jobs import DONE, ERROR, Job, expand
from .spec import SweepSpec, load_sweep, sweep_from_dict
from .worker import unpack

SPEC_FILE = "sweep-spec.json"

__all__ = ["SweepResult", "SweepSpec", "load_sweep", "run_sweep", "sweep_from_dict"]


@dataclass
class SweepResult:
    out: Path
    report: dict[str, Any]
    ran: int
    reused: int

    @property
    def ok(self) -> bool:
        """Every job finished and every row is within its budget."""
        return all(r["status"] in (Status.OK, Status.SKIPPED, Status.UNSUPPORTED) for r in self.report["rows"])


def load_result(out: Path, job: Job) -> dict[str, Any] | None:
    path = out / "jobs" / f"{job.id}.json"
    if not path.is_file():
        return None
    res = json.loads(path.read_text())
    if res.get("status") == DONE and not (out / job.id / "report.json").is_file():
        return None  # its run directory is gone: run it again
    return res


def run_sweep(
    spec: SweepSpec,
    base: Path,
    out: str | Path,
    executor: str = "local",
    address: str | None = None,
    workers: int | None = None,
    retry_failed: bool = False,
    progress: bool = True,
) -> SweepResult:
    from tqdm.auto import tqdm

    from . import report
    from .executors import get_executor

    out = Path(out).resolve()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / SPEC_FILE).is_file())):
        # a sweep resumes into its own directory; anything else there (a run, a file) is never written into
        raise OutputExistsError(f"'{out}' exists and is not a sweep directory (no {SPEC_FILE}); choose another --out")
    jobs = expand(spec, base)  # a malformed sweep fails here, before anything runs
    runner = get_executor(executor, workers=workers, address=address)
    for sub in ("jobs", "logs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    report.write_atomic(out / SPEC_FILE, json.dumps(to_dict(spec), indent=1))  # the sweep as it was run
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for job in jobs:
        saved = load_result(out, job)
        if saved is not None and (saved["status"] == DONE or not retry_failed):
            results[job.id] = saved
        else:
            todo.append(job)
    report.write(out, spec.name, executor, jobs, results)
    bar = tqdm(
        total=len(jobs),
        initial=len(jobs) - len(todo),
        desc=f"sweep {spec.name}",
        unit="job",
        disable=None if progress else True,
    )

    def on_result(job: Job, res: dict[str, Any]) -> None:
        archive = res.pop("archive", None)
        if archive is not None:
            unpack(archive, out)
        (out / "logs" / f"{job.id}.log").write_text(res.pop("log", ""))
        res = {**job.cell(), **res}
        tmp = out / "jobs" / f".{job.id}.json.tmp"
        tmp.write_text(json.dumps(res, indent=1, default=str))
        tmp.replace(out / "jobs" / f"{job.id}.json")
        results[job.id] = res
        report.write(out, spec.name, executor, jobs, results)
        bar.update(1)
        bar.set_postfix(errors=sum(r["status"] == ERROR for r in results.values()))

    try:
        runner.run(todo, out, on_result)
    finally:
        bar.close()
    doc = report.write(out, spec.name, executor, jobs, results)
    return SweepResult(out, doc, ran=len(todo), reused=len(jobs) - len(todo))
