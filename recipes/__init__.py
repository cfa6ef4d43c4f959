"""The shipped recipes, one YAML per family. Installed as the package ``edgekit.recipes`` (see pyproject.toml), so
``edgekit recipes`` finds them outside a source checkout too (edgekit/shipped.py reads them with
importlib.resources). This file only makes the folder a package; the recipes are the YAML files."""
