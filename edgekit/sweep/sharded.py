"""Validation of a run's artifacts over shards of its validation set, on Ray workers or in this process.

The driver cuts the run's validation set (and its stored FP32 / simulated-INT8 reference outputs) into shards;
each worker scores one shard against one artifact and returns :class:`~edgekit.validate.shards.ShardStats`;
the driver merges them into the same numbers a single-process ``edgekit validate`` gives. Under Ray the shards
travel through the object store (each worker holds only its own) and an artifact goes to a worker on another
node as an archive. The set itself is loaded once, by the driver: edgekit's data sources load into memory.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..data import DataSet
from ..errors import ModelError
from ..metrics import task_metric
from ..recipe import Precision
from ..registry import Registry
from ..status import validated
from ..validate.shards import ShardStats, merge_all, shard_stats

Shard = dict[str, Any]  # inputs, labels, fp32, sim: arrays of one shard
ShardRunner = Callable[[Path, list[Shard], int, int], list[ShardStats]]
SHARD_RUNNERS: Registry[ShardRunner] = Registry("shard executor")


def score_shard(artifact: Path, shard: Shard, batch_size: int, threads: int) -> ShardStats:
    """Run one artifact on one shard and return that shard's sums."""
    from ..evaluate import predict_artifact
    from ..targets.base import Artifact, get_target

    art = Artifact.read(artifact)
    # arrays from Ray's object store are read-only views; runtimes that bind input memory (OpenVINO) need writable
    inputs = {k: v if v.flags.writeable else v.copy() for k, v in shard["inputs"].items()}
    data = DataSet(inputs, shard["labels"], "shard")
    outputs = predict_artifact(get_target(art.target), art, data, batch_size, threads, progress=False)
    return shard_stats(outputs, shard["fp32"], shard["labels"], shard["sim"])


def _local(artifact: Path, shards: list[Shard], batch_size: int, threads: int) -> list[ShardStats]:
    return [score_shard(artifact, s, batch_size, threads) for s in shards]


def _ray_shard(archive: bytes | None, path: str, shard: Shard, batch_size: int, threads: int) -> ShardStats:
    if archive is None:  # the driver's node: the artifact is on this disk
        return score_shard(Path(path), shard, batch_size, threads)
    with tempfile.TemporaryDirectory(prefix="edgekit-shard-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            tar.extractall(tmp, filter="data")
        return score_shard(Path(tmp) / Path(path).name, shard, batch_size, threads)


def _ray(artifact: Path, shards: list[Shard], batch_size: int, threads: int) -> list[ShardStats]:
    from ..raylib import import_ray
    from .worker import archive_dir

    ray = import_ray("sharded validation on ray")
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    driver = ray.get_runtime_context().get_node_id()
    nodes = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
    archive = ray.put(archive_dir(artifact)) if nodes - {driver} else None  # other nodes need the files
    task = ray.remote(num_cpus=1)(_ray_shard)
    refs = [task.remote(archive, str(artifact), ray.put(s), batch_size, threads) for s in shards]
    return ray.get(refs)


SHARD_RUNNERS.add("local", _local)
SHARD_RUNNERS.add("ray", _ray)


def cut(val: DataSet, fp32: np.ndarray, sim: np.ndarray | None, n: int, shards: int) -> list[Shard]:
    """The first ``n`` samples in ``shards`` contiguous, nearly equal shards."""
    return [
        {
            "inputs": {k: v[idx] for k, v in val.inputs.items()},
            "labels": None if val.labels is None else val.labels[idx],
            "fp32": fp32[idx],
            "sim": None if sim is None else sim[idx],
        }
        for idx in np.array_split(np.arange(n), shards)
        if len(idx)
    ]


def validate_sharded(root: Path, shards: int, executor: str = "ray") -> list[dict[str, Any]]:
    """Every built artifact of run directory ``root`` scored over ``shards`` shards of its validation set:
    one dict per artifact with the merged ``accuracy`` (the keys of a report row's), ``delta`` vs FP32 and the
    number of samples and shards."""
    from ..rerun import _load, reference, sim_for, validation_set
    from ..targets.base import Artifact, get_target

    if shards <= 0:
        raise ModelError(f"shards must be positive, got {shards}")
    run = SHARD_RUNNERS.get(executor)
    report, recipe = _load(root)
    val = validation_set(report)
    fp32, sims = reference(root)
    if len(fp32) != len(val):
        raise ModelError(f"validation data now has {len(val)} samples but the run recorded {len(fp32)}")
    metric = report["metric"]
    out = []
    for row in report["rows"]:
        if not validated(row):
            continue
        art = Artifact.read(root / row["artifact"])
        n = min(len(val), get_target(art.target).validation_limit or len(val))  # as the run validated it
        use_sim = sim_for(sims, row) if art.precision is Precision.INT8 and art.quantizer == "edgekit" else None
        parts = cut(val, fp32, use_sim, n, shards)
        stats = merge_all(run(art.path, parts, recipe.validation.batch_size, recipe.benchmark.threads))
        acc = stats.compare(metric)
        ref = task_metric(metric, fp32[:n], fp32[:n], None if val.labels is None else val.labels[:n])
        out.append(
            {
                "artifact": row["artifact"],
                "target": art.target,
                "precision": art.precision.value,
                "samples": stats.n,
                "shards": len(parts),
                "accuracy": acc,
                "delta": acc["metric"] - ref,  # type: ignore[operator]
            }
        )
    return out
