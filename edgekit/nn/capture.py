"""Forward hooks over chosen modules, always removed: record each call's output, or keep a stack of the modules
running now (which module a torch function is called from).

Every helper is a context manager whose hooks are removed on exit, also when the body (a forward pass) raises or
registration fails part way, so a model never keeps a measurement's hooks (a deep copy would carry them).
Modules are given as ``(key, module)`` pairs, e.g. ``model.named_modules()`` or ``enumerate(...)``; a hook runs
in registration order, i.e. the order of the pairs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from torch import nn
from torch.utils.hooks import RemovableHandle

K = TypeVar("K")


@contextlib.contextmanager
def removing_hooks() -> Iterator[list[RemovableHandle]]:
    """A list to append hook handles to; every handle in it is removed on exit."""
    handles: list[RemovableHandle] = []
    try:
        yield handles
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def on_outputs(modules: Iterable[tuple[K, nn.Module]], record: Callable[[K, Any], object]) -> Iterator[None]:
    """Call ``record(key, output)`` after every forward of each module. The output is passed as the module
    returned it (a tensor or a tuple) and is never replaced: ``record``'s return value is ignored."""
    with removing_hooks() as handles:
        for key, module in modules:

            def hook(_m: nn.Module, _inputs: Any, output: Any, key: K = key) -> None:
                record(key, output)

            handles.append(module.register_forward_hook(hook))
        yield


@contextlib.contextmanager
def module_stack(modules: Iterable[tuple[K, nn.Module]], stack: list[K]) -> Iterator[list[K]]:
    """Push a module's key on ``stack`` when its forward starts and pop it when the forward returns, so
    ``stack[-1]`` is the innermost running module (of those given) and ``stack`` is empty outside all of them
    (unless it started with an entry, e.g. ``[""]`` for "the model itself"). Yields ``stack``."""
    with removing_hooks() as handles:
        for key, module in modules:
            handles.append(module.register_forward_pre_hook(lambda _m, _a, key=key: stack.append(key)))
            handles.append(module.register_forward_hook(_pop(stack)))
        yield stack


def _pop(stack: list[Any]) -> Callable[..., None]:
    def hook(_m: nn.Module, _inputs: Any, _output: Any) -> None:  # returns None: a value would replace the output
        stack.pop()

    return hook
