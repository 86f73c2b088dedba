"""Convert an iNaturalist 2018 annotation file to the list file of the configs.

Reads the official ``train2018.json`` or ``val2018.json`` (top-level keys
``images`` with ``id`` and ``file_name``, ``annotations`` with ``image_id``
and ``category_id``, ``categories`` with ``id``) and writes one line
``<file_name> <category_id>`` per image, in the order of ``images``: the
``path label`` list that ``configs/_base_/datasets/inat2018.py`` reads,
with paths relative to ``data_root`` (``data/inat2018``, holding
``train_val2018/``).

Example::

    python tools/dataset_converters/inat2018.py \
        data/inat2018/train2018.json data/inat2018/meta/iNaturalist18_train.txt
    python tools/dataset_converters/inat2018.py \
        data/inat2018/val2018.json data/inat2018/meta/iNaturalist18_val.txt

The list is written to a temporary file next to the output and renamed, so
a failed run leaves no partial list (and an existing one untouched).
"""
import argparse
import json
import os
import os.path as osp
import sys
import tempfile
from typing import Dict, List, Optional, Tuple

#: Images of each split and classes of the iNaturalist 2018 release.
RELEASE_IMAGES = dict(train=437513, val=24426)
RELEASE_CLASSES = 8142


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The parsed command line (``argv``, default ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'ann_file', help='train2018.json or val2018.json of the release')
    parser.add_argument(
        'out_file',
        help='list file to write, e.g. data/inat2018/meta/'
        'iNaturalist18_train.txt (its folder is created)')
    return parser.parse_args(argv)


def _entries(data: dict, ann_file: str, key: str,
             fields: Tuple[str, ...]) -> List[dict]:
    """``data[key]``, checked to be a list of dicts that have ``fields``."""
    entries = data[key]
    expected = (f'every entry of {key!r} must be an object with the keys '
                f'{", ".join(map(repr, fields))}')
    if not isinstance(entries, list):
        raise ValueError(f'{ann_file}: {key!r} is {type(entries).__name__}, '
                         f'not a list; {expected}')
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f'{ann_file}: {key}[{i}] is {entry!r}; '
                             f'{expected}')
        missing = [f for f in fields if f not in entry]
        if missing:
            raise ValueError(
                f'{ann_file}: {key}[{i}] has no key '
                f'{", ".join(map(repr, missing))} ({entry!r}); {expected}')
    return entries


def _is_int(value) -> bool:
    """Whether a JSON value is an integer: not a float such as ``1.0``, a
    string such as ``"3"`` or a boolean."""
    return isinstance(value, int) and not isinstance(value, bool)


_JSON_TYPES = dict(
    float='a number with a fraction or exponent',
    str='a string',
    NoneType='null',
    list='a list',
    dict='an object',
    bool='a boolean')


def _check_id(value, where: str, key: str, strings: bool = False) -> None:
    """Refuse an id of the wrong JSON type, naming where it is.

    Args:
        value: The id.
        where (str): The entry, for the message.
        key (str): The key of the id, for the message.
        strings (bool): Whether non-empty strings are ids too.
    """
    if _is_int(value) or (strings and isinstance(value, str) and value):
        return
    kind = _JSON_TYPES.get(type(value).__name__, type(value).__name__)
    allowed = ('an integer or a non-empty string' if strings else
               'an integer (e.g. 3, not 3.0 or "3"), as in the iNaturalist '
               'release: the list file holds the category id as the label, '
               'which the dataset reads back as an integer')
    raise ValueError(f'{where} has {key} {value!r} ({kind}); {key} must be '
                     f'{allowed}')


def convert(ann_file: str) -> Tuple[List[str], int]:
    """Read an iNaturalist annotation file into list-file lines.

    Args:
        ann_file (str): Path of the annotation JSON.

    Returns:
        tuple[list[str], int]: The lines ``'<file_name> <category_id>'``
        in image order, and the number of categories.

    Raises:
        ValueError: If the file is not JSON, lacks a key of the release, has
            an id of the wrong type (a category id that is not an integer,
            e.g. ``1.0`` or ``"3"``), two images with one id, two
            categories with one id, a file name that is not one line of
            text, or if its images and annotations do not pair up one to
            one.
    """
    with open(ann_file, encoding='utf-8') as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'{ann_file}: not a valid JSON file ({e})')
    keys = ('images', 'annotations', 'categories')
    missing = [k for k in keys
               if k not in data] if isinstance(data, dict) else list(keys)
    if missing:
        raise ValueError(
            f'{ann_file}: no top-level key {", ".join(map(repr, missing))}; '
            'an iNaturalist 2018 annotation file (train2018.json, '
            f'val2018.json) has the keys {", ".join(map(repr, keys))}')
    images = _entries(data, ann_file, 'images', ('id', 'file_name'))
    annotations = _entries(data, ann_file, 'annotations',
                           ('image_id', 'category_id'))
    categories = _entries(data, ann_file, 'categories', ('id', ))

    category_ids: Dict[int, int] = {}  # id: index in 'categories'
    for j, category in enumerate(categories):
        where = f'{ann_file}: categories[{j}]'
        _check_id(category['id'], where, 'id')
        if category['id'] in category_ids:
            raise ValueError(
                f"{ann_file}: categories[{category_ids[category['id']]}] and "
                f"categories[{j}] have the same id {category['id']!r}; every "
                'category needs its own id')
        category_ids[category['id']] = j
    if set(category_ids) != set(range(len(category_ids))):
        raise ValueError(
            f'{ann_file}: the ids of {len(category_ids)} categories are not '
            f'0..{len(category_ids) - 1}; the configs use them as labels')

    known: Dict[object, int] = {}  # image id: index in 'images'
    for i, image in enumerate(images):
        where = f'{ann_file}: images[{i}]'
        _check_id(image['id'], where, 'id', strings=True)
        name = image['file_name']
        if not isinstance(name, str) or not name.strip() or any(
                c in name for c in '\r\n') or name != name.strip():
            raise ValueError(
                f'{where} has file_name {name!r}; a file name must be a '
                'non-empty string without line breaks or surrounding spaces, '
                'since the list file holds it on one line')
        if image['id'] in known:
            first = images[known[image['id']]]
            raise ValueError(
                f"{ann_file}: images[{known[image['id']]}] "
                f"({first['file_name']!r}) and images[{i}] ({name!r}) have "
                f"the same id {image['id']!r}; every image needs its own id, "
                'or an annotation cannot tell which image it labels')
        known[image['id']] = i

    labels: Dict[object, Tuple[int, int]] = {}  # image id: (label, ann idx)
    for k, ann in enumerate(annotations):
        image_id, label = ann['image_id'], ann['category_id']
        where = f'{ann_file}: annotations[{k}]'
        _check_id(image_id, where, 'image_id', strings=True)
        _check_id(label, where, 'category_id')
        if image_id not in known:
            raise ValueError(f"{where} has image_id {image_id!r}, which is "
                             "not the id of an entry of 'images'")
        if label not in category_ids:
            raise ValueError(
                f"{where} has category_id {label!r}, not an id in "
                f"'categories' (0..{len(category_ids) - 1})")
        if image_id in labels:
            raise ValueError(
                f'{ann_file}: image id {image_id!r} has two annotations, '
                f'annotations[{labels[image_id][1]}] and annotations[{k}]; '
                'the list takes exactly one label per image')
        labels[image_id] = (label, k)

    lines = []
    for i, image in enumerate(images):
        if image['id'] not in labels:
            hint = (' (the file has no annotations at all: the test split '
                    'is unlabelled)') if not annotations else ''
            raise ValueError(
                f"{ann_file}: image id {image['id']!r} (images[{i}], "
                f"{image['file_name']!r}) has no annotation{hint}; every "
                'image needs one annotation with its image_id')
        lines.append(f"{image['file_name']} {labels[image['id']][0]}")
    return lines, len(category_ids)


def release_warning(ann_file: str, num_images: int, num_classes: int) -> str:
    """A warning when the counts are not those of the 2018 release.

    The split is told by the file name (``train`` / ``val`` in it), else by
    the number of images.

    Returns:
        str: The warning, or ``''`` when the counts match a split.
    """
    name = osp.basename(ann_file).lower()
    split = next((s for s in RELEASE_IMAGES if s in name), None) or next(
        (s for s, n in RELEASE_IMAGES.items() if n == num_images), None)
    if split and (RELEASE_IMAGES[split], RELEASE_CLASSES) == (num_images,
                                                              num_classes):
        return ''
    release = (f'the iNaturalist 2018 release has 437,513 train / 24,426 val '
               f'images of {RELEASE_CLASSES:,} classes')
    seems = (f'looks like the {split} split (by its name) but'
             if split else 'matches neither split: it')
    return (f'Warning: {ann_file} {seems} has {num_images:,} images of '
            f'{num_classes:,} classes; {release}. Check that the file is '
            'the complete 2018 release if you meant to use it.')


def write_atomic(lines: List[str], out_file: str) -> None:
    """Write ``lines`` to ``out_file`` through a temporary file and a rename.
    """
    folder = osp.dirname(osp.abspath(out_file))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=folder, prefix=f'.{osp.basename(out_file)}.', suffix='.tmp')
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private (0o600)
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            f.writelines(f'{line}\n' for line in lines)
        os.replace(tmp, out_file)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv: Optional[List[str]] = None) -> None:
    """Convert as the command line (``argv``) says; a malformed annotation
    file exits non-zero with a message naming the entry, writing nothing."""
    args = parse_args(argv)
    try:
        lines, num_classes = convert(args.ann_file)
    except (OSError, ValueError) as e:
        sys.exit(f'error: {e}')
    write_atomic(lines, args.out_file)
    print(f'Wrote {len(lines)} images of {num_classes} classes from '
          f'{args.ann_file} to {args.out_file}')
    warning = release_warning(args.ann_file, len(lines), num_classes)
    if warning:
        print(warning, file=sys.stderr)


if __name__ == '__main__':
    main()
