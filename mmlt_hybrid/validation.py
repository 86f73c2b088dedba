"""Checks of settings, made once at construction, each in one line.

Every check returns the value it accepted (so that ``self.x = check_...(...)``
validates and stores in one line) or raises with one message that names the
owner and the key, the value given and what is allowed, e.g.
``PSCLoss: num_negatives=0 is not allowed; it must be an integer >= 1.``
"""
import math
import numbers
from typing import Any, List, Optional, Sequence


def check(owner: str,
          key: str,
          value: Any,
          ok: bool,
          allowed: str,
          error: type = ValueError) -> Any:
    """``value`` if ``ok``, else ``error`` saying that ``value`` is not
    allowed and must be ``allowed``: the form of every check below, and of
    settings they do not cover (pairs, sequences)."""
    if not ok:
        raise error(f'{owner}: {key}={value!r} is not allowed; it must be '
                    f'{allowed}.')
    return value


def check_int(owner: str,
              key: str,
              value: Any,
              min_value: Optional[int] = 1,
              optional: bool = False) -> Optional[int]:
    """An integer (not a bool) of at least ``min_value`` (None: any).

    Args:
        owner (str): The class or function that takes the setting.
        key (str): The setting's name, as the config spells it.
        value: The value given.
        min_value (int, optional): Smallest allowed value. Defaults to 1.
        optional (bool): Whether None is allowed. Defaults to False.

    Returns:
        int | None: ``value`` as a Python int (None if allowed and given).
    """
    if value is None and optional:
        return None
    bound = '' if min_value is None else f' >= {min_value}'
    check(
        owner, key, value,
        isinstance(value, numbers.Integral) and not isinstance(value, bool)
        and (min_value is None or value >= min_value),
        f'{"None or " if optional else ""}an integer{bound}')
    return int(value)


def check_number(owner: str,
                 key: str,
                 value: Any,
                 low: float = -math.inf,
                 high: float = math.inf,
                 low_open: bool = False,
                 high_open: bool = False) -> float:
    """A finite real number (not a bool) in the range from ``low`` to
    ``high``, each end closed unless ``low_open`` / ``high_open``.

    Returns:
        float: ``value`` as a float.
    """
    ends = [f'{">" if low_open else ">="} {low}'] * (
        low > -math.inf) + [f'{"<" if high_open else "<="} {high}'] * (
            high < math.inf)
    check(
        owner, key, value,
        isinstance(value, numbers.Real) and not isinstance(value, bool)
        and math.isfinite(value)
        and (low < value or not low_open and low == value)
        and (value < high or not high_open and value == high),
        ('a finite number ' + ' and '.join(ends)).rstrip())
    return float(value)


def check_bool(owner: str, key: str, value: Any) -> bool:
    """True or False (not 0, 1 or a string); else a TypeError."""
    return check(owner, key, value, isinstance(value, bool), 'True or False',
                 TypeError)


def check_choice(owner: str, key: str, value: Any, choices: Sequence) -> Any:
    """One of ``choices``."""
    return check(owner, key, value, value in choices,
                 f'one of {tuple(choices)}')


def check_counts(owner: str,
                 key: str,
                 value: Any,
                 min_value: int = 0,
                 hint: str = '') -> List[int]:
    """Per-class training-image counts: the one check of every
    ``class_counts`` (metric, losses, heads).

    Args:
        owner (str): The class or function that takes the setting.
        key (str): The setting's name, as the config spells it.
        value: A list, tuple, numpy array or tensor of one count per class.
        min_value (int): The smallest allowed count. Defaults to 0.
        hint (str): Appended to the message of a bad count (what to do).

    Returns:
        list[int]: The counts as Python ints.

    Raises:
        TypeError: If ``value`` is not a sequence of counts.
        ValueError: If it is empty or a count is not an integer
            ``>= min_value`` (the message names its class index).
    """
    if hasattr(value, 'tolist') and not isinstance(value, (str, bytes)):
        value = value.tolist()  # numpy array or tensor
    allowed = f'one integer >= {min_value} per class{hint}'
    check(owner, key, value,
          isinstance(value, Sequence) and not isinstance(value, (str, bytes)),
          f'{allowed} (a list, tuple, array or tensor)', TypeError)
    check(owner, key, value, len(value) > 0, allowed)
    return [
        int(
            check(
                owner, f'{key}[{c}]', count,
                isinstance(count, numbers.Integral)
                and not isinstance(count, bool) and count >= min_value,
                f'an integer >= {min_value}{hint}'))
        for c, count in enumerate(value)
    ]


__all__ = [
    'check', 'check_int', 'check_number', 'check_bool', 'check_choice',
    'check_counts'
]
