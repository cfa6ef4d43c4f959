"""The recipes edgekit ships: the checkout's top-level recipes/, installed as the package ``edgekit.recipes``.

pyproject.toml maps ``edgekit.recipes`` onto recipes/, so a wheel (``pip install .``) carries them inside edgekit
and an editable install (``pip install -e .``) finds them in the checkout; both are read through
importlib.resources. An editable install made before that mapping existed has no ``edgekit.recipes``: then the
checkout's recipes/ next to this package is used directly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from .recipe import Recipe, load_recipe

CHECKOUT_RECIPES = Path(__file__).resolve().parent.parent / "recipes"


def recipes_root() -> Traversable:
    try:
        return resources.files("edgekit.recipes")
    except ModuleNotFoundError:
        return CHECKOUT_RECIPES


def recipe_files() -> list[Traversable]:
    """The shipped recipe files, by name."""
    root = recipes_root()
    if not root.is_dir():
        return []
    return sorted((f for f in root.iterdir() if f.name.endswith(".yaml") and f.is_file()), key=lambda f: f.name)


@contextlib.contextmanager
def recipe_path(file: Traversable) -> Iterator[Path]:
    """A file system path for a shipped recipe (a temporary copy when the package is inside an archive)."""
    with resources.as_file(file) as path:
        yield Path(path)


def shipped_recipes() -> Iterator[tuple[Traversable, Recipe]]:
    for f in recipe_files():
        with recipe_path(f) as p:
            yield f, load_recipe(p)
