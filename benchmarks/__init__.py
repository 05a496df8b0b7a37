"""Benchmarks: trainwell against a hand-written PyTorch loop and peer frameworks (see README.md)."""
