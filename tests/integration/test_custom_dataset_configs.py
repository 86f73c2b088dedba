"""docs/custom_dataset.md: both example configs train on generated folders.

The guide's smoke-test commands are read from the guide itself (the fenced
block between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``) and run
verbatim by bash, from a scratch folder laid out like a user's checkout:
links to the repository's ``tools/`` and ``configs/``, and the generated
images where the configs' placeholders point (``data_root``, read from the
config). So the tests run exactly what a reader copies, and the configs as
shipped (only the guide's own ``--cfg-options`` change them).

- ``custom-lt-smoke``: an already long-tailed folder (10 classes, counts out
  of frequency order, some images of other sizes, a hidden
  ``.ipynb_checkpoints`` folder) trains one epoch through tools/train.py and
  is tested through tools/test.py; every image is kept.
- ``custom-balanced-smoke``: a balanced folder (120 images per class) is
  cut to the exponential long tail of imbalance factor 100 and trains one
  epoch.
"""
import json
import os
import re
import shlex
import sys
from pathlib import Path
from typing import List

import numpy as np
import torch
from conftest import make_image_folder
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import DATASETS
from PIL import Image
from tool_runner import REPO_ROOT, run, scalars

import mmlt_hybrid  # noqa: F401  (registers components; checkpoint globals)

GUIDE = REPO_ROOT / 'docs' / 'custom_dataset.md'
EXAMPLES = REPO_ROOT / 'configs' / 'examples'
LT_CONFIG = 'hybrid_sc_r32_custom_lt_folder.py'
BALANCED_CONFIG = 'hybrid_sc_r32_custom_balanced_folder.py'
CLASSES = tuple(f'class_{i:03d}' for i in range(10))
GROUPS = ('long_tail/many', 'long_tail/medium', 'long_tail/few')


def guide_commands(name: str) -> List[str]:
    """The commands of the guide's block ``name``, continuations joined."""
    text = GUIDE.read_text()
    begin, end = f'<!-- {name}:begin -->', f'<!-- {name}:end -->'
    assert begin in text and end in text, f'{GUIDE} has no block {name!r}'
    block = text.split(begin, 1)[1].split(end, 1)[0]
    code = re.search(r'```bash\n(.*?)```', block, re.S).group(1)
    return [
        line.strip() for line in code.replace('\\\n', ' ').splitlines()
        if line.strip() and not line.strip().startswith('#')
    ]


def run_in(folder: Path, command: str):
    """Run a guide command with bash in ``folder``; ``python`` is this
    interpreter (the virtual environment's)."""
    path = f'{Path(sys.executable).parent}{os.pathsep}{os.environ["PATH"]}'
    return run(['bash', '-c', f'cd {shlex.quote(str(folder))} && {command}'],
               env={'PATH': path})


def checkout(tmp_path: Path, config: str) -> Path:
    """A scratch folder with ``tools/`` and ``configs/`` of the repository;
    returns the data folder the config's placeholder names, under it."""
    for name in ('tools', 'configs'):
        (tmp_path / name).symlink_to(REPO_ROOT / name, True)
    cfg = Config.fromfile(str(EXAMPLES / config))
    # The placeholders the generated data must fit.
    assert cfg.model.head.num_classes == len(CLASSES)
    data_root = cfg.train_dataloader.dataset.dataset.dataset.data_root
    assert cfg.test_dataloader.dataset.data_root == data_root
    assert not Path(data_root).is_absolute()
    return tmp_path / data_root


def trained_class_counts(checkpoint: Path, folder: Path) -> List[int]:
    """The training class counts of the config stored in a checkpoint (the
    run's own, with its --cfg-options), built from ``folder``."""
    meta = torch.load(
        checkpoint, map_location='cpu', weights_only=True)['meta']
    assert meta['dataset_meta']['classes'] == CLASSES
    cfg = Config.fromstring(meta['cfg'], '.py')
    cwd = os.getcwd()
    os.chdir(folder)  # data_root is relative to where the command ran
    try:
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            # The LongTailedDataset (no decoding of the images)
            lt = DATASETS.build(cfg.train_dataloader.dataset.dataset)
        return lt.class_counts
    finally:
        os.chdir(cwd)


def test_long_tailed_folder_trains_and_tests_with_the_guides_commands(
        tmp_path):
    data = checkout(tmp_path, LT_CONFIG)
    # Already long-tailed, counts not in label order: many-shot (> 100) is
    # class 1, medium (20..100) classes 0, 3, 5, 6, few (< 20) the rest.
    counts = [30, 110, 8, 45, 3, 21, 60, 12, 5, 2]
    make_image_folder(data, counts, test_per_class=2)
    # Images of other sizes (resized to image_size when read) ...
    rng = np.random.default_rng(1)
    for path, (h, w) in [(data / 'train/class_001/00030.png', (24, 40)),
                         (data / 'train/class_006/00217.png', (64, 48)),
                         (data / 'test/class_002/00004.png', (48, 48))]:
        assert path.is_file()
        Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)).save(path)
    # ... and a Jupyter folder, which must not become a class.
    for split in ('train', 'test'):
        hidden = data / split / '.ipynb_checkpoints'
        hidden.mkdir()
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(hidden / 'a.png')

    train, test = guide_commands('custom-lt-smoke')
    assert train.startswith(f'python tools/train.py configs/examples/'
                            f'{LT_CONFIG} ')
    assert test.startswith(f'python tools/test.py configs/examples/'
                           f'{LT_CONFIG} ')
    run_in(tmp_path, train)
    work_dir = tmp_path / 'work_dirs' / 'custom_lt_smoke'
    checkpoint = work_dir / 'epoch_1.pth'
    assert checkpoint.is_file()
    assert not (work_dir / 'epoch_2.pth').exists()  # one epoch
    # profile='none': every image of the folder, hidden ones skipped.
    assert trained_class_counts(checkpoint, tmp_path) == counts

    run_in(tmp_path, test)
    with open(work_dir / 'test_metrics.json') as f:
        metrics = json.load(f)
    for key in ('long_tail/top1', 'long_tail/mean_class_acc') + GROUPS:
        assert 0 <= metrics[key] <= 100, key


def test_balanced_folder_is_cut_and_trains_with_the_guides_command(tmp_path):
    data = checkout(tmp_path, BALANCED_CONFIG)
    cfg = Config.fromfile(str(EXAMPLES / BALANCED_CONFIG))
    lt = cfg.train_dataloader.dataset.dataset
    assert (lt.profile, lt.imbalance_factor) == ('exp', 100)
    make_image_folder(data, [120] * 10, test_per_class=2)
    # By hand: n_i = int(120 * 0.01 ** (i / 9)), 0.01 ** (1 / 9) = 0.59948:
    # 120, 71.94, 43.13, 25.85, 15.50, 9.29, 5.57, 3.34, 2.0017, 1.2.
    expected = [120, 71, 43, 25, 15, 9, 5, 3, 2, 1]

    (train, ) = guide_commands('custom-balanced-smoke')
    assert train.startswith(f'python tools/train.py configs/examples/'
                            f'{BALANCED_CONFIG} ')
    run_in(tmp_path, train)
    work_dir = tmp_path / 'work_dirs' / 'custom_balanced_smoke'
    checkpoint = work_dir / 'epoch_1.pth'
    assert checkpoint.is_file()
    assert trained_class_counts(checkpoint, tmp_path) == expected
    # The run validates after its last epoch, on the test folder; with
    # these counts all three groups have classes (> 100: 1, 20..100: 3).
    final = [r for r in scalars(work_dir) if 'long_tail/top1' in r]
    assert len(final) == 1
    for key in GROUPS:
        assert 0 <= final[0][key] <= 100, key
