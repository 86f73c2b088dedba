"""The ``path label`` list files of the long-tailed sets, read strictly.

One parser for every reader of such lists: :class:`ImageFolderDataset`
with an ``ann_file`` (the ImageNet-LT and iNaturalist configs) and
``tools/dataset_converters/check_lt_list.py``. mmpretrain's
``CustomDataset`` splits every line at its last space and fails on a
malformed line with a bare ``not enough values to unpack`` or ``invalid
literal for int()``, takes a negative label, and gives a label beyond the
classes to a class of its own; here every such line is refused naming the
file, the line number and what is wrong.

This module uses only the standard library, so that the list checker can
load it without importing torch.
"""
from typing import Iterable, List, NamedTuple, Optional

#: Lines named at most in one message.
MAX_NAMED = 5

_FORM = ("'path label' lines (a path relative to the data root, a space, a "
         'non-negative integer label)')


class ListEntry(NamedTuple):
    """One line of a list file."""
    path: str
    label: int
    lineno: int


def _shown(line: str) -> str:
    return repr(line if len(line) <= 100 else line[:97] + '...')


def parse_list(lines: Iterable[str],
               source: str,
               num_classes: Optional[int] = None) -> List[ListEntry]:
    """The entries of the lines of a ``path label`` list file.

    Every line is ``<path> <label>``, split at the last space (a path may
    hold spaces), with a non-negative integer label (digits only: ``3``,
    not ``3.0`` or ``-1``). Blank lines at the end of the file are ignored;
    a blank line before another line is refused (a lost entry, or two lists
    pasted together).

    Args:
        lines (Iterable[str]): The lines of the file, line breaks removed
            or not.
        source (str): The file, for the messages.
        num_classes (int, optional): The number of classes, when known:
            labels must then be below it.

    Returns:
        list[ListEntry]: One entry per line, in file order.

    Raises:
        ValueError: At the first malformed line, naming ``source``, the
            line number and what is wrong; or if there is no line.
    """
    entries: List[ListEntry] = []
    blank = None  # the first blank line since the last entry
    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip('\r\n')
        text = line.strip()
        if not text:
            blank = blank or lineno
            continue
        if blank is not None:
            raise ValueError(
                f'{source}:{blank}: a blank line, before line {lineno}; a '
                f'list file holds {_FORM}, one per image, with no blank line '
                'between them: fill it in or delete it')
        where = f'{source}:{lineno}:'
        parts = text.rsplit(' ', 1)
        if len(parts) != 2 or not parts[0].strip():
            raise ValueError(
                f'{where} {_shown(line)} has one field; expected {_FORM}, '
                'which is how the dataset reads every line: fix or delete '
                'it')
        path, label = parts[0].rstrip(), parts[1]
        if not (label.isascii() and label.isdigit()):
            raise ValueError(
                f'{where} {_shown(line)} has the label {label!r}, which is '
                f'not a non-negative integer; expected {_FORM}: fix or '
                'delete it')
        if num_classes is not None and int(label) >= num_classes:
            raise ValueError(
                f'{where} {_shown(line)} has the label {int(label)}, beyond '
                f'the {num_classes} classes (labels 0 to {num_classes - 1})'
                ': fix the label, or the classes')
        entries.append(ListEntry(path, int(label), lineno))
    if not entries:
        raise ValueError(f'{source}: the file has no entry; expected {_FORM}'
                         ', one per image')
    return entries


def labels_without_lines(entries: List[ListEntry]) -> List[int]:
    """The labels below the largest that no entry has."""
    present = {entry.label for entry in entries}
    return [c for c in range(max(present)) if c not in present]


def check_dense_labels(entries: List[ListEntry], source: str) -> None:
    """Refuse labels with a gap, naming the lines beyond it.

    Without class names the number of classes is the largest label + 1, so
    a label beyond the classes (e.g. 12 in a list of 10 classes) adds
    classes without images (10 and 11), which a long-tailed training set
    cannot have. This names the lines of the labels beyond the first gap.

    Args:
        entries (list[ListEntry]): The entries of the list file.
        source (str): The file, for the message.

    Raises:
        ValueError: If some label below the largest has no line.
    """
    empty = labels_without_lines(entries)
    if not empty:
        return
    beyond = [entry for entry in entries if entry.label > empty[0]]
    named = ', '.join(f'line {e.lineno} (label {e.label})'
                      for e in beyond[:MAX_NAMED])
    more = len(beyond) - MAX_NAMED
    shown = ', '.join(map(
        str, empty[:MAX_NAMED])) + (', ...' if len(empty) > MAX_NAMED else '')
    raise ValueError(
        f'{source}: {len(empty)} label(s) below the largest, '
        f'{max(e.label for e in entries)}, have no line ({shown}), so the '
        f'classes are not 0 to C - 1 with images of each. The labels above '
        f'{empty[0]} are on {named}' +
        (f' and {more} more line(s)' if more > 0 else '') +
        f'. If the set has {empty[0]} classes, these labels are beyond them: '
        'fix them; otherwise relabel the classes 0 to C - 1.')
