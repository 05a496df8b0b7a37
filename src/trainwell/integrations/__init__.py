"""Bridges to other libraries (Hugging Face transformers, wandb...), each imported only when used.

Empty for now: an integration gets a module here, its library goes in an extra of ``pyproject.toml``, and
nothing here is imported by ``import trainwell``.
"""
