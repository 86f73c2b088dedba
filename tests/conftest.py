"""Shared fixtures: tiny generated image folders shaped like CIFAR copies.

The images are 32x32 RGB PNGs laid out as
``<root>/{train,test}/<class>/NNNNN.png`` (the layout of the real CIFAR-10
copy). Each class has its own mean colour plus noise, so a model can learn
something from a handful of steps.

Tests on real data find it through :func:`real_data_root`.
"""
import ast
import functools
import hashlib
import os
import pickle
import time
from pathlib import Path
from typing import Callable, List, Sequence, Set

import numpy as np
import pytest
from PIL import Image

if os.environ.get('PYTEST_XDIST_WORKER'):
    # One compute thread per test process: xdist runs a process per core,
    # and OpenMP threads of concurrent processes spinning on the same cores
    # slow each other down several-fold (the tools they run, and the gloo
    # processes they spawn, inherit the setting).
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    os.environ.setdefault('MKL_NUM_THREADS', '1')
    import torch
    torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The environment variable that points the real-data tests at the data.
DATA_ROOT_VAR = 'MMLT_DATA_ROOT'


def real_data_root() -> Path:
    """The folder that holds the real data sets (e.g. ``cifar10/``).

    ``$MMLT_DATA_ROOT`` when set, else the default below, relative to the
    repository root (README.md, "Tests and CI"). Tests that need a data
    set under it skip, naming the variable, when the data set is absent.
    """
    return Path(os.environ.get(DATA_ROOT_VAR, REPO_ROOT / '../shared/data'))


def sha256_of(path: Path) -> str:
    """The sha256 of a file's bytes, in hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_image_folder(root: Path,
                      train_counts: Sequence[int],
                      test_per_class: int,
                      size: int = 32,
                      seed: int = 0) -> Path:
    """Write a generated image-folder dataset and return its root.

    Args:
        root: Folder to create.
        train_counts: Number of training images per class; its length is the
            number of classes. Classes are named ``class_000``,
            ``class_001``...
        test_per_class: Number of test images per class.
        size: Image side in pixels.
        seed: Seed of the generator.

    Returns:
        The root folder.
    """
    rng = np.random.default_rng(seed)
    num_classes = len(train_counts)
    colours = rng.integers(0, 256, size=(num_classes, 3))
    for split, counts in (('train', train_counts),
                          ('test', [test_per_class] * num_classes)):
        index = 0
        for label, count in enumerate(counts):
            folder = root / split / f'class_{label:03d}'
            folder.mkdir(parents=True, exist_ok=True)
            for _ in range(count):
                noise = rng.normal(0, 40, size=(size, size, 3))
                pixels = np.clip(colours[label] + noise, 0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(
                    folder / f'{index:05d}.png')
                index += 1
    return root


def tiny_hybrid_cfg(num_classes: int,
                    feat_head: str = 'SupConHead',
                    **kwargs) -> dict:
    """The config of a small ``HybridClassifier`` (ResNet-8, 64 features,
    a 16-d projection) with ``num_classes`` classes; ``kwargs`` update it.

    Args:
        num_classes: Classes of the classifier (and of a ``PSCHead``).
        feat_head: ``'SupConHead'`` or ``'PSCHead'``.
        **kwargs: Keys of the classifier's config to set.

    Returns:
        dict: The config, for ``MODELS.build``.
    """
    feat = dict(type=feat_head, in_channels=64, out_channels=16)
    if feat_head == 'PSCHead':
        feat['num_classes'] = num_classes
    cfg = dict(
        type='HybridClassifier',
        backbone=dict(type='CifarResNet', depth=8),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead', num_classes=num_classes, in_channels=64),
        feat_head=feat)
    cfg.update(kwargs)
    return cfg


def module_fixture_users(path: Path) -> Set[str]:
    """The test functions of a test module that use (directly or through
    other fixtures) a fixture of the module built once for the module
    (``scope='module'``, not ``autouse``), read from its source.

    Args:
        path: The test module.

    Returns:
        set[str]: The names of those test functions.
    """
    tree = ast.parse(path.read_text())
    functions = {
        node.name: node
        for node in tree.body if isinstance(node, ast.FunctionDef)
    }

    def fixture_scope(node: ast.FunctionDef):
        for dec in node.decorator_list:
            if ast.unparse(dec) == 'pytest.fixture':
                return 'function'
            if isinstance(dec, ast.Call) and ast.unparse(
                    dec.func) == 'pytest.fixture':
                options = {k.arg: ast.unparse(k.value) for k in dec.keywords}
                if options.get('autouse') == 'True':
                    return None
                return options.get('scope', "'function'").strip('\'"')
        return None

    def uses(node: ast.FunctionDef) -> Set[str]:
        return {a.arg for a in node.args.args} & set(functions)

    shared = {
        name
        for name, node in functions.items() if fixture_scope(node) == 'module'
    }
    changed = True
    while changed:  # fixtures built on those share them too
        grown = shared | {
            name
            for name, node in functions.items()
            if fixture_scope(node) and uses(node) & shared
        }
        changed, shared = grown != shared, grown
    return {
        name
        for name, node in functions.items()
        if name.startswith('test') and uses(node) & shared
    }


def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's scheduler for ``--dist load`` (its default): one test
    a unit except the tests of a module that share a module-scoped fixture:
    those are one unit (one worker builds the fixture once), the largest
    units first. Another ``--dist`` gets xdist's own scheduler."""
    if config.getvalue('dist') != 'load':
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):

        @functools.lru_cache(maxsize=None)
        def _shared(self, path: str) -> Set[str]:
            file = Path(config.rootpath, path)
            return module_fixture_users(file) if file.is_file() \
                else set()

        def _split_scope(self, nodeid: str) -> str:
            path, _, name = nodeid.partition('::')
            return path if name.split('[')[0] in self._shared(path) \
                else nodeid

    return SharedFixtureScheduling(config, log)


@pytest.fixture(autouse=True, scope='session')
def _config_text_unformatted():
    """Configs built in the test processes skip mmengine's yapf formatting
    of their text (a runner formats its config four times, logging and
    dumping it: about a second a runner here); the text stays the same valid
    Python, unformatted. Tools run as processes format as usual."""
    import mmengine.config.config as config_module
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(config_module, 'FormatCode', lambda text, **kwargs:
                      (text, False))
        yield


@pytest.fixture(autouse=True, scope='session')
def _fresh_runner_instances():
    """mmengine names a runner's logger, message hub and visualizer after
    the config and the second it starts, and reuses an instance of that
    name: a runner built in this process within the same second as an
    earlier one (of this test, a fixture or an earlier test) would log
    through the earlier one's stream and log file, and write scalars into
    its work dir. Every runner built in the test process first drops the
    instances created since the session started (the loggers' handlers
    closed); so does the end of every test (:func:`_no_runner_instances`).

    Yields:
        callable: The function that drops them.
    """
    from mmengine.logging import MessageHub, MMLogger
    from mmengine.runner import Runner
    from mmengine.visualization import Visualizer
    kinds = (MMLogger, MessageHub, Visualizer)
    baseline = {kind: set(kind._instance_dict) for kind in kinds}

    def drop() -> None:
        for kind in kinds:
            for name in set(kind._instance_dict) - baseline[kind]:
                instance = kind._instance_dict.pop(name)
                for handler in getattr(instance, 'handlers', []):
                    handler.close()

    build = Runner.__init__

    def fresh_instances(self, *args, **kwargs):
        drop()
        build(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Runner, '__init__', fresh_instances)
        yield drop


@pytest.fixture(autouse=True)
def _no_runner_instances(_fresh_runner_instances):
    """A test leaves no runner's logger, hub or visualizer behind."""
    yield
    _fresh_runner_instances()


@pytest.fixture(scope='session')
def tiny_folder(tmp_path_factory) -> Path:
    """10 classes, 24 training and 4 test images each (CIFAR-10 shaped)."""
    return make_image_folder(
        tmp_path_factory.mktemp('tiny10'), [24] * 10, test_per_class=4)


@pytest.fixture(scope='session')
def tiny_folder_100(tmp_path_factory) -> Path:
    """100 classes, 6 training and 1 test image each (CIFAR-100 shaped)."""
    return make_image_folder(
        tmp_path_factory.mktemp('tiny100'), [6] * 100, test_per_class=1)


def _toy_label_dataset_factory():
    """Build the factory behind the ``toy_label_dataset`` fixture."""
    from mmpretrain.datasets import BaseDataset

    class ToyLabelDataset(BaseDataset):
        """In-memory labelled dataset; image k is filled with k % 256."""

        def __init__(self,
                     labels,
                     num_classes=None,
                     image_size=None,
                     **kwargs):
            self._labels = [int(x) for x in labels]
            self._image_size = image_size
            if num_classes is None:
                num_classes = max(self._labels) + 1
            kwargs.setdefault('pipeline', [])
            super().__init__(
                ann_file='',
                metainfo=dict(classes=[f'c{i}' for i in range(num_classes)]),
                **kwargs)

        def load_data_list(self):
            data_list = []
            for k, label in enumerate(self._labels):
                info = dict(gt_label=label, toy_index=k)
                if self._image_size:
                    info['img'] = np.full(
                        (self._image_size, self._image_size, 3),
                        k % 256,
                        dtype=np.uint8)
                data_list.append(info)
            return data_list

    def make(labels, num_classes=None, image_size=None, **kwargs):
        return ToyLabelDataset(labels, num_classes, image_size, **kwargs)

    return make


@pytest.fixture
def toy_label_dataset():
    """Factory ``make(labels, num_classes=None, image_size=None, **kwargs)``
    of an in-memory mmpretrain dataset: sample k has label ``labels[k]``,
    ``toy_index=k`` and, with ``image_size``, an RGB uint8 image filled with
    ``k % 256``; ``metainfo['classes']`` has ``num_classes`` names."""
    return _toy_label_dataset_factory()


class NoReadBack:
    """Make every conversion of a tensor to a Python value raise, to show
    that code runs without reading values back from the device."""

    NAMES = ('__bool__', '__int__', '__float__', '__index__', 'item', 'tolist')

    def __enter__(self):
        import torch
        self.saved = {name: getattr(torch.Tensor, name) for name in self.NAMES}

        def refuse(self_, *args, **kwargs):
            raise AssertionError('a tensor was read back to the host')

        for name in self.NAMES:
            setattr(torch.Tensor, name, refuse)
        return self

    def __exit__(self, *exc):
        import torch
        for name, method in self.saved.items():
            setattr(torch.Tensor, name, method)


def _gloo_rank(rank: int, fn: Callable, world_size: int, folder: str,
               args: tuple) -> None:
    import torch
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group(
        'gloo',
        init_method=f'file://{folder}/rendezvous',
        rank=rank,
        world_size=world_size)
    try:
        result = fn(rank, *args)
    finally:
        dist.destroy_process_group()
    # A file, not a queue: a full pipe would block the process's exit.
    with open(f'{folder}/rank{rank}.pkl', 'wb') as f:
        pickle.dump(result, f)


def run_gloo(fn: Callable,
             world_size: int,
             tmp_path: Path,
             *args,
             timeout: float = 120) -> List:
    """Run ``fn(rank, *args)`` in ``world_size`` spawned processes joined in
    one gloo process group (one thread each; rendezvous and results through
    files in ``tmp_path``).

    ``fn`` and ``args`` must be picklable (``fn`` a module-level function of
    a test module), and so must what ``fn`` returns. Returns the value of
    ``fn`` of every rank, in rank order; fails if a process fails or they
    do not all finish within ``timeout`` seconds.
    """
    import torch.multiprocessing as mp
    folder = tmp_path / 'gloo'
    folder.mkdir()
    context = mp.spawn(
        _gloo_rank,
        args=(fn, world_size, str(folder), args),
        nprocs=world_size,
        join=False)
    deadline = time.monotonic() + timeout
    try:
        while not context.join(timeout=5):
            if time.monotonic() > deadline:
                raise TimeoutError(f'the {world_size} gloo processes did not '
                                   f'finish within {timeout} s')
    finally:
        for process in context.processes:
            if process.is_alive():
                process.terminate()
    results = []
    for rank in range(world_size):
        with open(folder / f'rank{rank}.pkl', 'rb') as f:
            results.append(pickle.load(f))
    return results
