"""Settings that can never train what they promise are refused (or warned
about) before the first step: SupCon with fewer than 3 rows per step (no
positive pair, or nothing to contrast it with), a head with other than the
training set's number of classes, a transition schedule that never weights
the classifier. The settings next to them that do work still train."""
import logging
import math
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub, MMLogger
from mmengine.runner import Runner
from tool_runner import REPO_ROOT, TINY_CONFIG, scalars, tiny_overrides

import mmlt_hybrid  # noqa: F401  (registers the components)
from mmlt_hybrid.engine.hooks import HybridTransitionHook
from mmlt_hybrid.utils import add_data_hooks

TINY_HYBRID_SC = REPO_ROOT / 'tests' / 'configs' / 'tiny_hybrid_sc.py'

# --- SupCon without a possible positive ----------------------------------


class PairItems(torch.utils.data.Dataset):
    """Four hybrid items, each with ``views`` views of its uniform image;
    all of class 0, so any two rows of a step are a positive pair."""

    metainfo = dict(classes=('a', 'b'))

    def __init__(self, views):
        self.views = views

    def __len__(self):
        return 4

    def get_gt_labels(self):
        return [0] * 4

    def __getitem__(self, index):
        from mmpretrain.structures import DataSample
        g = torch.Generator().manual_seed(index)
        image = torch.randint(
            0, 256, (3, 16, 16), dtype=torch.uint8, generator=g)
        return dict(
            inputs=dict(views=[image] * self.views, balanced=image),
            data_samples=dict(
                uniform=DataSample().set_gt_label(0),
                balanced=DataSample().set_gt_label(0)))


def pair_runner(work_dir,
                batch_size,
                data_views,
                num_views=None,
                feat_head='SupConHead'):
    feat = dict(type=feat_head, out_channels=8)
    if feat_head == 'PSCHead':
        feat['num_classes'] = 2
    return Runner(
        experiment_name=f'pairs_{Path(work_dir).name}',
        model=dict(
            type='HybridClassifier',
            data_preprocessor=dict(num_views=num_views),
            backbone=dict(type='CifarResNet', depth=8),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=2, in_channels=64),
            feat_head=feat),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=PairItems(data_views),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=batch_size,
            collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        custom_hooks=[
            dict(type='HybridTransitionHook'),
            dict(type='ModelDataCheckHook')
        ],
        default_hooks=dict(
            checkpoint=None, logger=dict(type='LoggerHook', interval=1)),
        log_processor=dict(window_size=1),
        default_scope='mmpretrain',
        randomness=dict(seed=0),
        log_level='WARNING')


# SupCon is 0 at every step with fewer than 3 rows: one row has no
# positive; two rows are a positive pair with nothing else in the
# denominator (log 1 = 0) or no pair at all.
@pytest.mark.parametrize(
    'batch_size,data_views,num_views,rows',
    [
        (1, 1, None, 1),  # the case: one image, one view
        (1, 2, None, 2),  # the shipped two views of a single image
        (1, 1, 2, 2),  # the preprocessor makes the two views
        (2, 1, None, 2),  # two images, one view each
    ])
def test_supcon_with_fewer_than_3_rows_is_refused(tmp_path, batch_size,
                                                  data_views, num_views, rows):
    runner = pair_runner(tmp_path, batch_size, data_views, num_views)
    with pytest.raises(ValueError) as info:
        runner.train()
    message = str(info.value)
    views = num_views or data_views
    assert f'{rows} row' in message
    assert f'train_dataloader.batch_size={batch_size}' in message
    assert f'{views} view' in message and 'num_views' in message
    assert 'loss_feat' in message
    assert not scalars(tmp_path)  # refused before the first step


# Three identical rows (unaugmented views of one image): each anchor has two
# positives of equal similarity s, l = -(1/2) * 2 * (s - log(2 e^s)) = log 2.
@pytest.mark.parametrize(
    'batch_size,data_views,num_views,feat_head,loss',
    [
        (1, 3, None, 'SupConHead',
         math.log(2)),  # three views of the one image
        (1, 1, 3, 'SupConHead', math.log(2)),  # the preprocessor makes them
        (3, 1, None, 'SupConHead', None),  # three images of class 0
        (1, 1, None, 'PSCHead', None),  # the class prototype is the positive
    ])
def test_settings_with_a_non_zero_feature_loss_train(tmp_path, batch_size,
                                                     data_views, num_views,
                                                     feat_head, loss):
    runner = pair_runner(tmp_path, batch_size, data_views, num_views,
                         feat_head)
    runner.train()
    # alpha = 1 in epoch 1: the feature loss is the whole loss, and not 0
    # (PSC's 'negatives' denominator can make it negative).
    first = [r for r in scalars(tmp_path) if 'loss_feat' in r][0]
    if loss is not None:
        assert first['loss_feat'] == pytest.approx(loss, rel=1e-5)
    assert abs(first['loss_feat']) > 0.1


def tiny_hybrid_cfg(tmp_path, **options):
    cfg = Config.fromfile(str(TINY_HYBRID_SC))
    cfg.work_dir = str(tmp_path)
    cfg.log_level = 'WARNING'
    cfg.experiment_name = f'tiny_hybrid_{tmp_path.name}'
    cfg.merge_from_dict(options)
    return cfg


def test_quick_start_with_batch_1_is_refused(tmp_path):
    """The shipped two views of one image per step: loss_feat 0.0000 in
    every iteration of the run on today's code."""
    cfg = tiny_hybrid_cfg(tmp_path, **{'train_dataloader.batch_size': 1})
    with pytest.raises(
            ValueError, match=r'train_dataloader\.batch_size=1.*2 view'):
        Runner.from_cfg(cfg).train()
    assert not scalars(tmp_path)


# --- a head with more classes than the data --------------------------------


def test_hybrid_head_with_more_classes_than_the_data_is_refused(tmp_path):
    cfg = tiny_hybrid_cfg(tmp_path, **{'model.head.num_classes': 20})
    with pytest.raises(
            ValueError, match=r'model\.head\.num_classes=20.*10 classes'):
        Runner.from_cfg(cfg).train()


def test_stock_config_gets_the_class_check(tiny_folder, tmp_path):
    """A stock mmpretrain config (plain Accuracy, no ClassCountsHook)
    trained as tools/train.py prepares it: the head's 20 classes against the
    folder's 10 are refused."""
    cfg = Config.fromfile(str(TINY_CONFIG))
    cfg.merge_from_dict(tiny_overrides(tiny_folder))
    cfg.merge_from_dict({
        'model.head.num_classes': 20,
        'train_dataloader.num_workers': 0
    })
    cfg.work_dir = str(tmp_path)
    cfg.log_level = 'WARNING'
    assert add_data_hooks(cfg) == ['ClassCountsHook', 'ModelDataCheckHook']
    assert cfg.custom_hooks == [
        dict(type='ClassCountsHook'),
        dict(type='ModelDataCheckHook')
    ]
    with pytest.raises(
            ValueError, match=r'model\.head\.num_classes=20.*10 classes'):
        Runner.from_cfg(cfg).train()


def test_data_hooks_added_to_every_training_config():
    plain = Config(
        dict(
            train_dataloader=dict(batch_size=2),
            val_evaluator=dict(type='Accuracy')))
    assert add_data_hooks(plain) == ['ClassCountsHook', 'ModelDataCheckHook']
    assert plain.custom_hooks == [
        dict(type='ClassCountsHook'),
        dict(type='ModelDataCheckHook')
    ]
    assert add_data_hooks(plain) == []  # once
    no_training = Config(dict(test_evaluator=dict(type='Accuracy')))
    assert add_data_hooks(no_training) == []
    assert 'custom_hooks' not in no_training
    # A LongTailAccuracy without data to evaluate needs only the counts.
    testing = Config(
        dict(
            test_evaluator=dict(type='LongTailAccuracy'),
            custom_hooks=[dict(type='EMAHook')]))
    assert add_data_hooks(testing) == ['ClassCountsHook']
    assert testing.custom_hooks == [
        dict(type='EMAHook'),
        dict(type='ClassCountsHook')
    ]
    # Evaluating data (tools/test.py, or validation) gets the check too:
    # the metric's counts and the evaluation set's classes against the
    # training data's, with any metric.
    for loader in ('test_dataloader', 'val_dataloader'):
        for metric, expected in (('Accuracy', ['ModelDataCheckHook']),
                                 ('LongTailAccuracy',
                                  ['ClassCountsHook', 'ModelDataCheckHook'])):
            evaluating = Config({
                loader: dict(batch_size=2),
                'test_evaluator': dict(type=metric)
            })
            assert add_data_hooks(evaluating) == expected, (loader, metric)
            assert add_data_hooks(evaluating) == []  # once


# --- a schedule that never weights the classifier --------------------------
# Warned about before training (a one-step smoke test is such a run too).


class WithAlpha(torch.nn.Module):

    def __init__(self):
        super().__init__()
        self.alpha = None


def fake_runner(max_epochs, max_iters=None, name='never'):
    return SimpleNamespace(
        model=WithAlpha(),
        epoch=0,
        iter=0,
        max_epochs=max_epochs,
        max_iters=max_iters or 4 * max_epochs,
        train_loop=None,
        message_hub=MessageHub.get_instance(f'never_{name}'))


@contextmanager
def warnings_logged():
    """The WARNING records of the current MMLogger (the runner's)."""
    records = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


@pytest.mark.parametrize(
    'hook_args,max_epochs',
    [
        (dict(), 1),  # parabolic: 1 - (0 / 1)^2 = 1 in the only epoch
        (dict(schedule='linear'), 1),
        (dict(schedule='cosine'), 1),
        (dict(schedule='step', switch_epoch=3), 3),  # switches after the end
        (dict(schedule='constant', value=1.0), 5),
    ])
def test_schedule_without_classifier_weight_is_warned_about(
        hook_args, max_epochs):
    hook = HybridTransitionHook(**hook_args)
    runner = fake_runner(max_epochs, name=str(sorted(hook_args.items())))
    with warnings_logged() as records:
        hook.before_train(runner)
    assert len(records) == 1
    message = records[0].getMessage()
    assert f"schedule='{hook.schedule}'" in message
    assert f'alpha=1.0 in all {max_epochs} training epoch' in message
    assert 'loss_cls' in message and 'train_cfg.max_epochs' in message


@pytest.mark.parametrize(
    'hook_args,max_epochs',
    [
        (dict(schedule='linear'), 2),  # alpha 1, 0.5
        (dict(schedule='step', switch_epoch=2), 3),  # 1, 1, 0
        (dict(schedule='constant', value=0.9), 1),
        (dict(by_epoch=False), 1),  # per iteration: 1, 15/16, 3/4, 7/16
    ])
def test_schedules_with_classifier_weight_give_no_warning(
        hook_args, max_epochs):
    hook = HybridTransitionHook(**hook_args)
    runner = fake_runner(max_epochs, name='ok' + str(sorted(hook_args)))
    with warnings_logged() as records:
        hook.before_train(runner)
    assert records == []


def test_quick_start_for_one_epoch_warns_before_training(tmp_path):
    cfg = tiny_hybrid_cfg(tmp_path, **{'train_cfg.max_epochs': 1})
    cfg.log_level = 'INFO'  # the iterations' lines too
    runner = Runner.from_cfg(cfg)
    runner.train()
    log = Path(runner.log_dir, f'{runner.timestamp}.log').read_text()
    warning = log.index("schedule='parabolic' gives alpha=1.0 in all 1 "
                        'training epoch(s)')
    assert warning < log.index('Epoch(train) [1][1/')
    # What it warns about: the classifier term was 0 in every iteration.
    cls = [r['loss_cls'] for r in scalars(tmp_path) if 'loss_cls' in r]
    assert len(cls) == 6 and set(cls) == {0.0}
