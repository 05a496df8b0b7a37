"""Files that survive crashes: atomic pickle-free writes, and verified checkpoint directories.

:mod:`~trainwell.storage.files` writes weights (safetensors) and training state (safetensors + JSON)
atomically; :mod:`~trainwell.storage.checkpoints` writes whole checkpoint directories with a sha256
manifest and trusts only the ones that verify. Nothing here ever unpickles.
"""
