"""The package version (one place; the root package and packages written by dualseg read it)."""

__version__ = "0.1.0"
