"""The version of trainwell, in one place (the package, run.json and loggers read it from here)."""

__version__ = "0.1.0"
