import warnings
from collections import OrderedDict

import numpy as np
import pytest
import torch

from trainwell import get_batch_size, warning_settings


@pytest.fixture
def settings():
    saved = dict(warning_settings)
    yield warning_settings
    warning_settings.clear()
    warning_settings.update(saved)


def test_a_tensor_or_array_anywhere_in_the_arguments_comes_first():
    assert get_batch_size(torch.zeros(7, 2), torch.zeros(3)) == 7
    assert get_batch_size([torch.zeros(4)], np.zeros((9, 1))) == 9  # pass 1 beats pass 2 of an earlier value


def test_lists_and_tuples_give_the_length_of_their_first_element():
    assert get_batch_size((torch.zeros(5), torch.zeros(6)), None) == 5
    assert get_batch_size([1, 2, 3], [np.zeros(4), np.zeros(8)]) == 4


def test_an_integer_batch_size_key_beats_the_dict_values():
    assert get_batch_size({"batch_size": 11, "x": torch.zeros(3)}, {"y": torch.zeros(3)}) == 11
    assert get_batch_size({"x": torch.zeros(3)}, {"batch_size": np.int64(12)}) == 12
    assert get_batch_size({"x": torch.zeros(3), "batch_size": True}) == 3  # a bool is not a size


def test_the_first_value_of_a_dict():
    assert get_batch_size(OrderedDict([("a", torch.zeros(2)), ("b", torch.zeros(5))]), {}) == 2


def test_no_size_found_counts_one_with_a_warning_that_settings_silence(settings):
    with pytest.warns(UserWarning, match="warning_settings\\['batch_size'\\] = 'ignore'"):
        assert get_batch_size([1, 2], {"a": 3}, torch.tensor(2.0)) == 1  # a 0-d tensor has no length
    settings["batch_size"] = "ignore"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert get_batch_size([1, 2], [3]) == 1


def test_an_unknown_setting_value_is_refused(settings):
    settings["batch_size"] = "loud"
    with pytest.raises(ValueError, match=r"'warn' or 'ignore'. Received: warning_settings\['batch_size'\]='loud'"):
        get_batch_size([1], [2])
