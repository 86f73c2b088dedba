"""Nothing silent, round two (b): what a careless user could do that ran to
the end and exited 0.

1. Class counts that contradict the training data: a ``LongTailAccuracy``
   given other counts than the training set's is refused, naming both;
   a loss's given counts that differ are warned about; counts given at test
   time are used, not the checkpoint's.
2. Class identity: a test (or validation) set whose classes differ from
   those the checkpoint (or the run) was trained on is refused, naming the
   differences.
10. An image the stock ``LoadImageFromFile`` cannot read is named, whatever
   the pipeline, by the wrappers that read it.

(5, ``--auto-scale-lr``, is tested over every config in
``test_configs.py::test_auto_scale_lr_keeps_the_lr_at_the_configs_own_batch``.)
"""
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from conftest import make_image_folder
from mmengine.config import Config
from mmpretrain.registry import DATASETS, MODELS
from tool_runner import REPO_ROOT, TINY_CONFIG, load_tool, tiny_overrides

import mmlt_hybrid  # noqa: F401  (registers the components, safe globals)
from mmlt_hybrid.datasets import long_tailed_counts

HYBRID = REPO_ROOT / 'tests' / 'configs' / 'tiny_hybrid_sc.py'
#: tiny_hybrid_sc's training set: 24 synthetic images a class, IF 10.
HYBRID_COUNTS = long_tailed_counts(24, 10, 10)
SYNTHETIC_CLASSES = [f'class_{i}' for i in range(10)]
FOLDER_CLASSES = [f'class_{i:03d}' for i in range(10)]


@pytest.fixture(autouse=True)
def _restore_local_rank(monkeypatch):
    """The tools' parse_args export LOCAL_RANK; undo that after each test."""
    monkeypatch.setenv('LOCAL_RANK', '0')


def _checkpoint(path, config, classes, options=None, **head):
    """A checkpoint of ``config``'s model (head changed by ``head``) whose
    ``meta.dataset_meta`` names ``classes`` (none: no dataset_meta)."""
    cfg = Config.fromfile(str(config))
    cfg.merge_from_dict(options or {})
    cfg.model.head.update(head)
    model = MODELS.build(cfg.model)
    meta = dict(epoch=1, iter=6)
    if classes is not None:
        meta['dataset_meta'] = dict(classes=list(classes))
    torch.save(dict(state_dict=model.state_dict(), meta=meta), path)
    return path


def _log(work_dir: Path) -> str:
    return '\n'.join(p.read_text() for p in work_dir.glob('*/*.log'))


def _test(config, checkpoint, work_dir, *options):
    argv = [str(config), str(checkpoint), '--work-dir', str(work_dir)]
    if options:
        argv += ['--cfg-options', *options]
    return load_tool('test.py').main(argv)


def _folder_options(folder, **extra):
    options = dict(tiny_overrides(folder), **extra)
    return [f'{key}={value}' for key, value in options.items()]


# ----------------------------------- 1. counts that contradict the data


@pytest.mark.parametrize(
    'counts',
    [
        [1] * 9 + [1000],  # the case
        HYBRID_COUNTS[:9],  # the training counts of 9 classes
    ],
    ids=['1000-last', 'nine-classes'])
def test_test_metric_counts_other_than_the_training_sets_are_refused(
        tmp_path, counts):
    checkpoint = _checkpoint(tmp_path / 'c.pth', HYBRID, SYNTHETIC_CLASSES)
    given = str(counts).replace(' ', '')
    with pytest.raises(ValueError) as error:
        _test(HYBRID, checkpoint, tmp_path / 'wd',
              f'test_evaluator.class_counts={given}')
    message = str(error.value)
    assert 'test_evaluator LongTailAccuracy class_counts=' in message
    assert str(counts) in message and str(HYBRID_COUNTS) in message
    assert 'Remove class_counts from test_evaluator' in message


def test_test_metric_counts_equal_to_the_training_sets_are_accepted(tmp_path):
    checkpoint = _checkpoint(tmp_path / 'c.pth', HYBRID, SYNTHETIC_CLASSES)
    given = str(HYBRID_COUNTS).replace(' ', '')
    metrics = _test(HYBRID, checkpoint, tmp_path / 'wd',
                    f'test_evaluator.class_counts={given}')
    assert 'long_tail/top1' in metrics


def test_val_metric_counts_other_than_the_training_sets_refuse_training(
        tmp_path):
    """Refused before the first step, not after hours of training."""
    work_dir = tmp_path / 'wd'
    with pytest.raises(
            ValueError,
            match=r'val_evaluator LongTailAccuracy '
            r'class_counts=\[1, 1, 1, 1, 1, 1, 1, 1, 1, 1000\]'):
        load_tool('train.py').main([
            str(HYBRID), '--work-dir',
            str(work_dir), '--cfg-options',
            'val_evaluator.class_counts=[1,1,1,1,1,1,1,1,1,1000]'
        ])
    assert not list(work_dir.glob('*.pth'))
    assert 'Epoch(train)' not in _log(work_dir)


@pytest.mark.parametrize('loss', ['LogitAdjustedLoss', 'BalancedSoftmaxLoss'])
def test_loss_counts_other_than_the_training_sets_are_warned_about(
        tiny_folder, tmp_path, loss):
    """A chosen target prior can be meant: trained, with a WARNING naming
    both counts."""
    work_dir = tmp_path / 'wd'
    load_tool('train.py').main([
        str(TINY_CONFIG), '--work-dir',
        str(work_dir), '--no-validate', '--cfg-options', *_folder_options(
            tiny_folder, **{
                'model.head.loss.type': loss,
                'model.head.loss.class_counts': '[5,5,5,5,5,5,5,5,5,50]',
                'train_cfg.max_epochs': 1,
                'train_dataloader.num_workers': 0
            })
    ])
    log = _log(work_dir)
    warning = [
        line for line in log.splitlines()
        if 'WARNING' in line and 'model.head.loss.class_counts=' in line
    ]
    assert len(warning) == 1, log[-3000:]
    assert f'[5, 5, 5, 5, 5, 5, 5, 5, 5, 50] (10 classes) ({loss})' in \
        warning[0]
    assert f"training set's class counts {[24] * 10}" in warning[0]
    assert (work_dir / 'epoch_1.pth').is_file()


def test_head_counts_given_at_test_time_are_used(tiny_folder, tmp_path):
    """--cfg-options model.head.class_counts=[...] used to be replaced by
    the checkpoint's counts when it loaded: the predictions were those of
    the training counts."""
    head = dict(type='LogitAdjustedLinearClsHead', posthoc_tau=1.0)
    options = tiny_overrides(tiny_folder)
    checkpoint = _checkpoint(
        tmp_path / 'c.pth',
        TINY_CONFIG,
        FOLDER_CLASSES,
        options,
        **head,
        class_counts=[24] * 10)
    state = torch.load(checkpoint)['state_dict']
    assert state['head.class_counts'].tolist() == [24] * 10
    scores = {}
    for name, counts in (('checkpoint', None), ('given', [1000] + [1] * 9)):
        extra = {'model.head.type': head['type']}
        if counts is not None:
            extra['model.head.class_counts'] = str(counts).replace(' ', '')
        out = tmp_path / f'{name}.pkl'
        load_tool('test.py').main([
            str(TINY_CONFIG),
            str(checkpoint), '--work-dir',
            str(tmp_path / name), '--out',
            str(out), '--cfg-options', *_folder_options(tiny_folder, **extra)
        ])
        with open(out, 'rb') as f:
            scores[name] = torch.stack(
                [torch.as_tensor(r['pred_score']) for r in pickle.load(f)])
    # The prior of class 0 (1000 of 1009) lowers its scores, raises the rest.
    assert not torch.allclose(scores['given'], scores['checkpoint'])
    assert (scores['given'][:, 0] < scores['checkpoint'][:, 0]).all()
    log = _log(tmp_path / 'given')
    assert ('LogitAdjustedLinearClsHead (head.class_counts): the '
            'class_counts given in the config [1000, 1, 1, 1, 1, 1, 1, 1, 1,'
            " 1] are used, not the checkpoint's [24, 24, 24, 24, 24, 24, 24,"
            ' 24, 24, 24].') in log


@pytest.mark.parametrize('owner', ['head', 'loss'])
def test_counts_given_in_the_config_win_over_the_checkpoints(owner, caplog):
    """The prior of a head or a loss given in the config is kept when a
    checkpoint loads (mmengine's loader, as Runner.load_checkpoint); one
    without counts takes the checkpoint's."""
    from mmengine.logging import MMLogger
    from mmengine.runner.checkpoint import load_state_dict
    if owner == 'head':

        def build(counts):
            return MODELS.build(
                dict(
                    type='LogitAdjustedLinearClsHead',
                    num_classes=3,
                    in_channels=4,
                    class_counts=counts))

        key, name = 'class_counts', 'LogitAdjustedLinearClsHead'
    else:

        def build(counts):
            return MODELS.build(
                dict(
                    type='LinearClsHead',
                    num_classes=3,
                    in_channels=4,
                    loss=dict(type='LogitAdjustedLoss', class_counts=counts)))

        key, name = 'loss_module.class_counts', 'LogitAdjustedLoss'
    saved = build([30, 20, 10]).state_dict()
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('INFO')
    try:
        with caplog.at_level('INFO', logger=logger.name):
            logger.addHandler(caplog.handler)
            try:
                given = build([1, 1, 5])
                load_state_dict(given, saved, strict=True)
                empty = build(None)
                load_state_dict(empty, saved, strict=True)
            finally:
                logger.removeHandler(caplog.handler)
    finally:
        logger.setLevel(level)
    assert given.state_dict()[key].tolist() == [1, 1, 5]
    assert empty.state_dict()[key].tolist() == [30, 20, 10]
    lines = [
        r.getMessage() for r in caplog.records
        if 'are used, not' in r.getMessage()
    ]
    assert lines == [
        f'{name} ({key[:-len("class_counts")]}class_counts): '
        'the class_counts given in the config [1, 1, 5] are '
        "used, not the checkpoint's [30, 20, 10]."
    ]


# ------------------------------------------------------ 2. class identity


def test_nine_class_checkpoint_on_ten_class_test_data_is_refused(tmp_path):
    """A 9-class model (the config agreeing) on 10-class test data: the
    tenth class's images were scored as if they were of the nine."""
    nine = dict(num_classes=9)
    options = ['model.head.num_classes=9', 'data_preprocessor.num_classes=9']
    checkpoint = _checkpoint(tmp_path / 'c.pth', HYBRID, SYNTHETIC_CLASSES[:9],
                             **nine)
    with pytest.raises(ValueError) as error:
        _test(HYBRID, checkpoint, tmp_path / 'wd', *options)
    message = str(error.value)
    assert ("the test set (test_dataloader.dataset, SyntheticImageDataset) "
            "has other classes than the checkpoint's training set") in message
    assert "9 trained, 10 here; extra ['class_9']" in message


def test_renamed_class_folder_is_refused(tiny_folder, tmp_path):
    """One class folder renamed (class_001 -> car, as automobile -> car)
    shifts the labels of the classes between the two names ('car' sorts
    first: it becomes label 0, class_000 label 1)."""
    test_root = tmp_path / 'test'
    shutil.copytree(tiny_folder / 'test', test_root)
    (test_root / 'class_001').rename(test_root / 'car')
    checkpoint = _checkpoint(tmp_path / 'c.pth', TINY_CONFIG, FOLDER_CLASSES,
                             tiny_overrides(tiny_folder))
    with pytest.raises(ValueError) as error:
        _test(
            TINY_CONFIG, checkpoint, tmp_path / 'wd',
            *_folder_options(
                tiny_folder,
                **{'test_dataloader.dataset.data_root': str(test_root)}))
    message = str(error.value)
    assert "missing ['class_001']; extra ['car']" in message
    assert ("labels whose class differs (renamed or reordered, label: "
            "trained -> here): 0: 'class_000' -> 'car', 1: 'class_001' -> "
            "'class_000'") in message


def test_renamed_class_folder_in_the_validation_set_refuses_training(
        tiny_folder, tmp_path):
    val_root = tmp_path / 'val'
    shutil.copytree(tiny_folder / 'test', val_root)
    (val_root / 'class_004').rename(val_root / 'car')
    work_dir = tmp_path / 'wd'
    with pytest.raises(ValueError) as error:
        load_tool('train.py').main([
            str(TINY_CONFIG), '--work-dir',
            str(work_dir), '--cfg-options', *_folder_options(
                tiny_folder, **{
                    'val_dataloader.dataset.data_root': str(val_root),
                    'train_dataloader.num_workers': 0,
                    'train_cfg.max_epochs': 1
                })
        ])
    message = str(error.value)
    assert ('the val set (val_dataloader.dataset, CustomDataset) has other '
            'classes than the training set') in message
    assert "missing ['class_004']; extra ['car']" in message
    assert not list(work_dir.glob('*.pth'))


@pytest.mark.parametrize(
    'classes', [None, FOLDER_CLASSES], ids=['no-dataset-meta', 'same-classes'])
def test_test_set_with_the_training_classes_is_evaluated(
        tiny_folder, tmp_path, classes):
    """The same classes pass; a checkpoint without dataset_meta (older, or
    of another tool) is evaluated, saying at INFO that nothing was
    compared."""
    checkpoint = _checkpoint(tmp_path / 'c.pth', TINY_CONFIG, classes,
                             tiny_overrides(tiny_folder))
    metrics = _test(TINY_CONFIG, checkpoint, tmp_path / 'wd',
                    *_folder_options(tiny_folder))
    assert 'accuracy/top1' in metrics
    note = 'the checkpoint has no dataset_meta classes'
    assert (note in _log(tmp_path / 'wd')) == (classes is None)


# --------------------------------------------- 10. unreadable images named


def _broken_folder(root: Path, broken: str) -> Path:
    """Two classes of three images; class_001's second image broken."""
    make_image_folder(root, [3, 3], test_per_class=0, size=8)
    path = root / 'train' / 'class_001' / '00004.png'
    path.write_bytes(b'' if broken == 'empty' else bytes(range(256)) * 2)
    return path


# What mmcv's loader said, without a file name.
ORIGINAL = {
    ('empty', 'cv2'): '!buf.empty()',
    ('empty', 'pillow'): 'cannot identify image file',
    ('garbage', 'pillow'): 'cannot identify image file'
}


@pytest.mark.parametrize('broken,backend', list(ORIGINAL))
@pytest.mark.parametrize(
    'wrapper',
    ['LongTailedDataset', 'HybridPairDataset', 'HybridPairDataset-loading'])
def test_stock_loader_on_an_unreadable_image_names_the_file(
        tmp_path, broken, backend, wrapper):
    path = _broken_folder(tmp_path, broken)
    load = [dict(type='LoadImageFromFile', imdecode_backend=backend)]
    inner = dict(
        type='CustomDataset',
        data_root=str(tmp_path / 'train'),
        pipeline=load if wrapper != 'HybridPairDataset' else [])
    lt = dict(type='LongTailedDataset', imbalance_factor=1, dataset=inner)
    if wrapper == 'LongTailedDataset':
        dataset = DATASETS.build(lt)
        # Each class's images shuffled: the wrapper's index of the file.
        index = [dataset.get_ori_index(i) for i in range(6)].index(4)
        where = (f'sample {index} (index 4 of the wrapped CustomDataset)'
                 if index != 4 else 'sample 4')
    else:
        pack = [dict(type='PackInputs')]
        dataset = DATASETS.build(
            dict(
                type='HybridPairDataset',
                dataset=inner if wrapper == 'HybridPairDataset' else dict(
                    lt, profile='none'),
                pipeline=(load if wrapper == 'HybridPairDataset' else []) +
                pack))
        index, where = (0, 4), 'sample 4'
    with pytest.raises(Exception) as error:
        dataset[index]
    message = str(error.value)
    owner = 'LongTailedDataset' if wrapper != 'HybridPairDataset' \
        else 'HybridPairDataset'
    assert f'{owner}: reading {where} failed, img_path={str(path)!r}' in \
        message
    assert ORIGINAL[(broken, backend)] in message
    assert error.value.__cause__ is not None
    assert ORIGINAL[(broken, backend)] in str(error.value.__cause__)


def test_errors_that_name_the_file_are_unchanged(tmp_path):
    """CheckedLoadImageFromFile names the file already, and mmcv's own
    cv2 'failed to load image': raised as they were."""
    path = _broken_folder(tmp_path, 'garbage')
    for load, text in (('CheckedLoadImageFromFile', 'cannot be decoded'),
                       ('LoadImageFromFile', 'failed to load image')):
        dataset = DATASETS.build(
            dict(
                type='LongTailedDataset',
                profile='none',
                dataset=dict(
                    type='CustomDataset',
                    data_root=str(tmp_path / 'train'),
                    pipeline=[dict(type=load)])))
        with pytest.raises(Exception) as error:
            dataset[4]
        assert str(path) in str(error.value) and text in str(error.value)
        assert 'reading sample' not in str(error.value)
