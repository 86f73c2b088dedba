"""The one-line setting checks: accepted values come back, every refusal
names owner, key, value and what is allowed."""
import math

import numpy as np
import pytest

from mmlt_hybrid.validation import (
    check,
    check_bool,
    check_choice,
    check_int,
    check_number,
)


def test_check_int():
    assert check_int('A', 'n', 3) == 3
    assert type(check_int('A', 'n', np.int64(4))) is int
    assert check_int('A', 'n', -5, min_value=None) == -5
    assert check_int('A', 'n', 0, min_value=0) == 0
    assert check_int('A', 'n', None, optional=True) is None
    for bad in (0, -1, True, 2.0, '2', None):
        with pytest.raises(ValueError) as err:
            check_int('A', 'n', bad)
        assert str(err.value) == (f'A: n={bad!r} is not allowed; it must be '
                                  'an integer >= 1.')
    with pytest.raises(ValueError, match=r'must be None or an integer >= 0'):
        check_int('A', 'n', -1, min_value=0, optional=True)


def test_check_number():
    assert check_number('B', 'p', 1, 0, 1) == 1.0
    assert check_number('B', 'p', 0.5, 0, 1, low_open=True) == 0.5
    cases = [
        (dict(low=0, high=1), 1.5, 'a finite number >= 0 and <= 1'),
        (dict(low=0, high=1,
              low_open=True), 0, 'a finite number > 0 and <= 1'),
        (dict(low=0, high=1,
              high_open=True), 1, 'a finite number >= 0 and < 1'),
        (dict(low=0, low_open=True), 0, 'a finite number > 0'),
        (dict(low=0), -0.1, 'a finite number >= 0'),
        (dict(high=2), 3, 'a finite number <= 2'),
        (dict(), math.nan, 'a finite number'),
        (dict(), math.inf, 'a finite number'),
        (dict(), True, 'a finite number'),
        (dict(), '1', 'a finite number'),
    ]
    for kwargs, bad, allowed in cases:
        with pytest.raises(ValueError) as err:
            check_number('B', 'p', bad, **kwargs)
        assert str(err.value) == (f'B: p={bad!r} is not allowed; it must be '
                                  f'{allowed}.')


def test_check_bool_and_choice():
    assert check_bool('C', 'on', False) is False
    for bad in (0, 1, 'yes', None):
        with pytest.raises(
                TypeError,
                match=f"C: on={bad!r} is not allowed; "
                'it must be True or False.'):
            check_bool('C', 'on', bad)
    assert check_choice('D', 'mode', 'a', ('a', 'b')) == 'a'
    with pytest.raises(ValueError) as err:
        check_choice('D', 'mode', 'c', ['a', 'b'])
    assert str(err.value) == ("D: mode='c' is not allowed; it must be one of "
                              "('a', 'b').")


def test_check_general_form():
    pair = (3, 4)
    assert check('E', 'size', pair, len(pair) == 2, 'a pair') is pair
    with pytest.raises(ValueError) as err:
        check('E', 'size', (3, ), False, 'a pair (h, w)')
    assert str(err.value) == ('E: size=(3,) is not allowed; it must be a '
                              'pair (h, w).')
    with pytest.raises(KeyError, match='E: k=1 is not allowed'):
        check('E', 'k', 1, False, 'a name', KeyError)


def test_check_counts_is_the_one_class_count_check():
    """Lists, tuples, arrays and tensors of integers give a list of ints;
    the message names the bad class; min_value and the hint are the
    caller's."""
    import numpy as np
    import torch

    from mmlt_hybrid.validation import check_counts
    for counts in ([3, 0, 1], (3, 0, 1), np.array([3, 0,
                                                   1]), torch.tensor([3, 0,
                                                                      1])):
        assert check_counts('M', 'class_counts', counts) == [3, 0, 1]
        assert all(type(c) is int for c in check_counts('M', 'k', counts))
    with pytest.raises(
            ValueError,
            match=r'^L: class_counts\[1\]=0 is not '
            r'allowed; it must be an integer >= 1, do this\.$'):
        check_counts('L', 'class_counts', [3, 0], 1, ', do this')
    with pytest.raises(ValueError, match=r'k\[0\]=2.5 is not allowed'):
        check_counts('M', 'k', torch.tensor([2.5]))
    with pytest.raises(
            ValueError,
            match=r'k=\[\] is not allowed; it must be '
            r'one integer >= 0 per class\.$'):
        check_counts('M', 'k', [])
    with pytest.raises(
            TypeError,
            match=r"k='12' is not allowed; it must be "
            r'one integer >= 0 per class \(a list, tuple'):
        check_counts('M', 'k', '12')
