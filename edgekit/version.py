"""The package version, in a module of its own so low layers (an artifact's metadata) read it without importing
the package root and its public API."""

__version__ = "0.1.0"
