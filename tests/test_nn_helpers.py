"""edgekit.nn.capture (hooks that record outputs / keep a module stack, always removed) and edgekit.nn.scopes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgekit.nn.capture import module_stack, on_outputs, removing_hooks
from edgekit.nn.scopes import attribute, child_slots, inside, parent_of, qualified, set_module


class _Boom(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("boom")


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.Sequential(nn.ReLU(), nn.Linear(3, 2)))


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_on_outputs_records_each_call_and_keeps_the_output():
    model, x = _net(), torch.randn(5, 4)
    expected = model(x)
    seen: list[tuple[str, torch.Tensor]] = []
    with on_outputs([("0", model[0]), ("1.1", model[1][1])], lambda k, o: seen.append((k, o)) or "ignored"):
        out = model(x)
        model(x)
    assert torch.equal(out, expected)  # record's return value never replaces the output
    assert [k for k, _ in seen] == ["0", "1.1", "0", "1.1"]
    assert torch.equal(seen[1][1], expected)
    assert _hook_count(model) == 0
    model(x)
    assert len(seen) == 4


def test_hooks_removed_when_the_forward_raises():
    model = nn.Sequential(nn.Linear(2, 2), _Boom())
    stack: list[str] = []
    recorded = on_outputs(model.named_modules(), lambda k, o: None)
    with pytest.raises(ValueError, match="boom"), recorded, module_stack(model.named_modules(), stack):
        model(torch.zeros(1, 2))
    assert _hook_count(model) == 0


def test_hooks_removed_when_registration_fails_part_way():
    model = _net()

    def pairs():
        yield "0", model[0]
        raise RuntimeError("no more")

    with pytest.raises(RuntimeError, match="no more"), on_outputs(pairs(), lambda k, o: None):
        pass
    assert _hook_count(model) == 0


def test_module_stack_tracks_the_innermost_module():
    model = _net()
    stack = [""]
    seen: list[list[str]] = []
    relu = [("relu", model[1][0])]
    with module_stack(model.named_modules(), stack), on_outputs(relu, lambda k, o: seen.append(list(stack))):
        model(torch.randn(1, 4))
    assert seen == [["", "", "1"]]  # the ReLU popped itself (its stack hook ran first); its parent still runs
    assert stack == [""]
    assert _hook_count(model) == 0


def test_removing_hooks_removes_every_handle():
    model = _net()
    with pytest.raises(KeyError), removing_hooks() as handles:
        handles.append(model[0].register_forward_hook(lambda *_: None))
        raise KeyError("x")
    assert _hook_count(model) == 0


def test_scopes():
    model = _net()
    assert qualified("", "fc") == "fc" and qualified("a.b", "c") == "a.b.c"
    assert parent_of(model, "1.1") == (model[1], "1")
    assert parent_of(model, "0") == (model, "0")
    assert parent_of(model, "1.1.weight") == (model[1][1], "weight")
    assert attribute(model, "1.1.weight") is model[1][1].weight and attribute(model, "1") is model[1]
    new = nn.Identity()
    set_module(model, "1.0", new)
    assert model[1][0] is new
    assert inside("layers.1.fc", "layers.1") and inside("layers.1", "layers.1") and inside("x", "")
    assert not inside("layers.10", "layers.1") and not inside("layers", "layers.1")


def test_child_slots_allows_replacing_while_iterating():
    model = _net()
    visited = []
    for parent, attr, name, child in child_slots(model):
        visited.append(name)
        assert getattr(parent, attr) is child
        if isinstance(child, nn.Linear):
            setattr(parent, attr, nn.Sequential(child))  # a replacement is not visited
    assert visited == ["0", "1", "1.0", "1.1"]
    assert isinstance(model[0], nn.Sequential) and isinstance(model[1][1], nn.Sequential)
