"""Statuses, the words the JSON reports store: a report row's (one target x precision, ``report.json``) and a
device entry's (one artifact on one device, ``devices/<device>.json``).

``str`` enums: reports are plain JSON, so a status read back from one compares equal to its member
(``row["status"] == Status.OK``), hashes like it, and a member serializes and formats as its value.
"""

from __future__ import annotations

from enum import Enum


class _Word(str, Enum):
    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __hash__(self) -> int:  # as its value: a member and the word read back from JSON are one dict key
        return hash(self.value)


class Status(_Word):
    OK = "ok"  # built, validated, within the accuracy budget
    FAIL = "fail"  # built and validated, over the budget
    ERROR = "error"  # a stage raised (edgekit.isolate): the row names the stage and the first line
    UNSUPPORTED = "unsupported"  # the converter or runtime cannot take this model or program
    SKIPPED = "skipped"  # not built or not run here (backend missing, runtime absent on this machine)


def validated(row: dict) -> bool:
    """The row of an artifact that was built and compared with FP32 (``ok`` or ``fail``: it has numbers and can
    be benchmarked)."""
    return row.get("status") in (Status.OK, Status.FAIL)


class DeviceStatus(_Word):
    MEASURED = "measured"  # timed on the device (and scored, with an accuracy set)
    SKIPPED = "skipped"  # the device cannot run it (its runtime is missing there, Core ML off macOS)
    ERROR = "error"  # the runner failed on it
