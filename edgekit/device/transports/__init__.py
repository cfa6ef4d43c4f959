"""Device transports, keyed by the scheme of the device spec: ``local``, ``ssh://user@host[:port]``,
``adb[:serial]``. Each module is imported only when a device of its kind is used."""

from __future__ import annotations

import importlib

from ...errors import DeviceError, did_you_mean
from .base import ArtifactRef, BenchOptions, Transport

__all__ = ["TRANSPORTS", "ArtifactRef", "BenchOptions", "Transport", "open_device", "scheme_of"]

# scheme -> (module in this package, class)
TRANSPORTS = {"local": ("local", "LocalTransport"), "ssh": ("ssh", "SshTransport"), "adb": ("adb", "AdbTransport")}


def scheme_of(spec: str) -> str:
    """``ssh://...`` -> ssh; ``adb:SERIAL`` -> adb; ``local`` -> local."""
    return spec.split("://", 1)[0] if "://" in spec else spec.split(":", 1)[0]


def open_device(spec: str) -> Transport:
    scheme = scheme_of(spec)
    if scheme not in TRANSPORTS:
        raise DeviceError(
            f"unknown device '{spec}'{did_you_mean(scheme, TRANSPORTS)}: use local, ssh://user@host[:port] "
            "or adb[:serial]"
        )
    module, cls = TRANSPORTS[scheme]
    return getattr(importlib.import_module(f".{module}", __name__), cls)(spec)
