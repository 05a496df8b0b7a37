"""The ``trainwell`` command: train, resume, test, inspect and search from config files.

Empty for now: each subcommand gets a module here, built on the public API (``Experiment``).
"""
