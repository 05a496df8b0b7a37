"""Dialects of other training libraries, tinydl and fitloop, as thin adapters over trainwell's ``Model``.

Each dialect is a subpackage named after the library it speaks for (:mod:`trainwell.compat.tinydl`,
:mod:`trainwell.compat.fitloop`), built on the public API: the training is trainwell's one loop, with
what it adds (progress display, no per-batch host sync, safe storage). docs/dialects.md is the guide.
"""
