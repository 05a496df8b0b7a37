"""Bridges to other libraries, each imported only when used: ``trainwell.integrations.transformers``.

Nothing is imported here, so ``import trainwell`` never loads an optional library; import the module of
the library you use, e.g. ``from trainwell.integrations.transformers import ModelWrapper``.
"""
