"""Poutyne's top-level save_random_states / load_random_states: every generator back, no pickle in the file."""

import random

import numpy as np
import torch

import trainwell


def test_saved_random_states_come_back_for_python_numpy_and_torch(tmp_path):
    path = tmp_path / "states"
    trainwell.save_random_states(path)
    expected = (random.random(), float(np.random.rand()), torch.rand(3))
    random.random(), np.random.rand(), torch.rand(7)  # move every generator on
    trainwell.load_random_states(path)
    again = (random.random(), float(np.random.rand()), torch.rand(3))
    assert expected[:2] == again[:2] and torch.equal(expected[2], again[2])
    # A safetensors file (its header's length, then JSON), which the safetensors reader opens: no pickle.
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        assert "trainwell_state" in handle.metadata()
