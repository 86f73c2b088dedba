"""Check a long-tailed ``path label`` list file against its image root.

Reads a list file as the configs' ``CustomDataset`` does (one
``<path relative to the data root> <label>`` line per image, the label after
the last space; the ImageNet-LT, Places-LT and iNaturalist lists as
published, or one's own) and checks that every listed file exists under
``DATA_ROOT`` (the config's ``data_root`` joined with ``data_prefix``). It
prints the number of classes, the largest and smallest class, the imbalance
factor (largest / smallest) and the sizes of the many / medium / few-shot
groups that ``LongTailAccuracy`` forms from these counts with its default
thresholds.

Example::

    python tools/dataset_converters/check_lt_list.py \
        data/imagenet/meta/ImageNet_LT_train.txt data/imagenet

Exits non-zero when a line is malformed, a listed file is missing (the first
10 are printed, and their count) or a label below the largest has no images.
"""
import argparse
import importlib.util
import os.path as osp
import sys
import warnings
from typing import Dict, List, Tuple

#: Missing files printed at most.
MAX_SHOWN = 10


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('list_file', help='list file, "path label" lines')
    parser.add_argument(
        'data_root',
        help='folder the listed paths are relative to (the '
        "config's data_root joined with data_prefix)")
    return parser.parse_args()


def _list_file_module():
    """``mmlt_hybrid/datasets/list_file.py``, the parser the datasets use.

    It needs only the standard library and is loaded on its own, without
    importing the package (torch), so that the line checks are fast.
    """
    spec = importlib.util.find_spec('mmlt_hybrid')  # does not import it
    package = (
        spec.submodule_search_locations[0] if spec is not None else osp.join(
            osp.dirname(osp.abspath(__file__)), '..', '..', 'mmlt_hybrid'))
    path = osp.join(package, 'datasets', 'list_file.py')
    module_spec = importlib.util.spec_from_file_location(
        'mmlt_hybrid_list_file', path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module  # for its NamedTuple
    module_spec.loader.exec_module(module)
    return module


def read_list(list_file: str) -> List[Tuple[str, int]]:
    """The ``(path, label)`` of every line of a list file.

    The lines are read by the parser of the datasets
    (``mmlt_hybrid.datasets.list_file.parse_list``).

    Args:
        list_file (str): The list file.

    Returns:
        list[tuple[str, int]]: One entry per line, in file order.

    Raises:
        ValueError: At the first line that is not ``path label`` with a
            non-negative integer label, or a blank line between entries
            (naming the line number), or if the file has no lines.
    """
    with open(list_file, encoding='utf-8') as f:
        entries = _list_file_module().parse_list(f, list_file)
    return [(entry.path, entry.label) for entry in entries]


def shot_group_sizes(counts: List[int]) -> Tuple[float, float, Dict]:
    """Sizes of the many / medium / few-shot groups of ``LongTailAccuracy``.

    Uses the metric's own split (``shot_groups``) with the thresholds that
    ``LongTailAccuracy`` takes by default. Imports the package (torch) only
    here, so that ``--help`` and the line checks are fast.

    Args:
        counts (list[int]): Images of every label.

    Returns:
        tuple: ``many_shot_thr``, ``few_shot_thr`` and a dict of the number
        of classes in ``many``, ``medium`` and ``few``.
    """
    with warnings.catch_warnings():  # mmcv-lite's ops warning on import
        warnings.simplefilter('ignore')
        from mmlt_hybrid.evaluation.metrics.long_tail_accuracy import (
            FEW_SHOT_THR,
            MANY_SHOT_THR,
            shot_groups,
        )
    many_thr, few_thr = MANY_SHOT_THR, FEW_SHOT_THR
    groups = shot_groups(counts, many_thr, few_thr)
    return many_thr, few_thr, {k: len(v) for k, v in groups.items()}


def main() -> None:
    args = parse_args()
    if not osp.isdir(args.data_root):
        sys.exit(f'error: the data root {args.data_root} is not a folder; '
                 'pass the folder the listed paths are relative to')
    try:
        entries = read_list(args.list_file)
    except (OSError, ValueError) as e:
        sys.exit(f'error: {e}')

    problems = []
    missing = [
        p for p, _ in entries if not osp.isfile(osp.join(args.data_root, p))
    ]
    if missing:
        problems.append(f'{len(missing)} missing files')
        print(f'{args.list_file}: {len(missing)} of {len(entries)} listed '
              f'files are missing under {args.data_root}; the first '
              f'{min(len(missing), MAX_SHOWN)}:')
        print(''.join(f'  {path}\n' for path in missing[:MAX_SHOWN]), end='')
    else:
        print(f'{args.list_file}: {len(entries)} images, all found under '
              f'{args.data_root}')

    counts = [0] * (max(label for _, label in entries) + 1)
    for _, label in entries:
        counts[label] += 1
    print(f'classes: {len(counts)} (labels 0 to {len(counts) - 1})')
    empty = [c for c, n in enumerate(counts) if n == 0]
    if empty:
        problems.append('labels without images')
        print(f'labels without images ({len(empty)}): label '
              f'{", ".join(map(str, empty[:MAX_SHOWN]))}; the number of '
              'classes is the largest label + 1 and LongTailedDataset needs '
              'images of every class: relabel the classes 0 to C - 1')
    present = [(n, c) for c, n in enumerate(counts) if n > 0]
    largest = max(present, key=lambda x: x[0])
    smallest = min(present, key=lambda x: x[0])
    print(f'largest class: label {largest[1]} ({largest[0]} images)')
    print(f'smallest class: label {smallest[1]} ({smallest[0]} images)')
    print(f'imbalance factor: {largest[0] / smallest[0]:g}')
    many_thr, few_thr, sizes = shot_group_sizes(counts)
    print(f'many-shot (more than {many_thr:g} images): {sizes["many"]} '
          'classes')
    print(f'medium-shot ({few_thr:g} to {many_thr:g} images): '
          f'{sizes["medium"]} classes')
    print(f'few-shot (fewer than {few_thr:g} images): {sizes["few"]} '
          'classes')
    if problems:
        sys.exit(f'error: {args.list_file}: {" and ".join(problems)} '
                 '(see above)')


if __name__ == '__main__':
    main()
