"""Who reads a module's output? A one-forward trace that lets folds prove they are safe on any model.

Folding a per-channel affine (an inference-time norm) into the next Linear is exact only when *every* reader
of the norm's output is a Linear layer, and each such Linear reads nothing else. HF models are not torch.fx
traceable in general, so this traces at the torch-function level while module hooks track which module is
running. Indexing that keeps the channel (last) dimension (e.g. ``x[:, 0, :]``) is transparent.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import ModelError
from ..nn.capture import module_stack, on_outputs

_EXAMPLE: contextvars.ContextVar[tuple[torch.Tensor, ...] | None] = contextvars.ContextVar("example", default=None)


@contextlib.contextmanager
def example_inputs(inputs: tuple[torch.Tensor, ...]) -> Iterator[None]:
    """Make example inputs available to transforms that need one traced forward (the pipeline sets this)."""
    token = _EXAMPLE.set(inputs)
    try:
        yield
    finally:
        _EXAMPLE.reset(token)


def current_example_inputs(transform: str) -> tuple[torch.Tensor, ...]:
    inputs = _EXAMPLE.get()
    if inputs is None:
        raise ModelError(
            f"transform '{transform}' traces one forward pass: run it from a recipe, or inside "
            "edgekit.transforms.consumers.example_inputs(...)"
        )
    return inputs


@dataclass
class Readers:
    linears: list[str] = field(default_factory=list)  # Linear modules reading the output
    others: list[str] = field(default_factory=list)  # anything else (function names)


def _tensors(obj: object) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


def trace_readers(
    model: nn.Module, inputs: tuple[torch.Tensor, ...], sources: list[str]
) -> tuple[dict[str, Readers], dict[str, set[str | None]]]:
    """For each source module name: who reads its output. Also, for every Linear: which sources it reads
    (``None`` stands for any other tensor)."""
    modules = dict(model.named_modules())
    readers = {s: Readers() for s in sources}
    linear_inputs: dict[str, set[str | None]] = {}
    tracked: dict[int, str] = {}
    keep: list[torch.Tensor] = []  # keeps tracked tensors alive so their ids are not reused
    stack = [""]  # the innermost running module's name ("": the model itself)

    def track(name: str, out: object) -> None:
        if isinstance(out, torch.Tensor):
            tracked[id(out)] = name
            keep.append(out)

    class Spy(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
            kwargs = kwargs or {}
            result = func(*args, **kwargs)
            if not isinstance(result, torch.Tensor):
                return result  # metadata queries (size, dim, ...) do not read values
            fname = getattr(func, "__name__", str(func))
            current = stack[-1]
            first = args[0] if args else None
            if fname == "linear" and isinstance(modules.get(current), nn.Linear) and isinstance(first, torch.Tensor):
                linear_inputs.setdefault(current, set()).add(tracked.get(id(first)))
            for t in _tensors((args, kwargs)):
                src = tracked.get(id(t))
                if src is None:
                    continue
                if fname == "linear" and t is first and isinstance(modules.get(current), nn.Linear):
                    readers[src].linears.append(current)
                elif fname == "__getitem__" and t is first and result.dim() and result.shape[-1] == t.shape[-1]:
                    tracked[id(result)] = src
                    keep.append(result)
                elif t is not result:
                    readers[src].others.append(fname)
            return result

    named = [(n, m) for n, m in modules.items() if n]
    sources = [(n, m) for n, m in named if n in readers]
    with module_stack(named, stack), on_outputs(sources, track), torch.no_grad(), Spy():
        model(*inputs)
    return readers, linear_inputs


def foldable_into_linears(
    model: nn.Module, inputs: tuple[torch.Tensor, ...], sources: list[str]
) -> dict[str, list[str] | str]:
    """source -> the Linear names it folds into, or a reason string when it cannot be folded."""
    readers, linear_inputs = trace_readers(model, inputs, sources)
    out: dict[str, list[str] | str] = {}
    for src, r in readers.items():
        linears = sorted(set(r.linears))
        if r.others:
            out[src] = f"output also read by {sorted(set(r.others))}"
        elif not linears:
            out[src] = "output not read by any Linear in the traced forward"
        elif any(linear_inputs.get(name, set()) != {src} for name in linears):
            out[src] = "a reading Linear also reads other tensors"
        else:
            out[src] = linears
    return out
