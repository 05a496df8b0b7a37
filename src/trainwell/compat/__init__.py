"""Dialects of other training libraries (tinydl, fitloop) as thin adapters over trainwell's own ``Model``.

Empty for now: a dialect gets a subpackage here named after the library it speaks for, built on the
public API only (no second loop).
"""
