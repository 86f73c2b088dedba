"""ClassCountsHook with real mmengine Runners: counts from the built training
dataloader (train), from the training config (test only), kept when given,
and the error when there is no training set."""
import copy

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.runner import Runner
from mmpretrain.registry import HOOKS

import mmlt_hybrid  # noqa: F401
from mmlt_hybrid.datasets import long_tailed_counts
from mmlt_hybrid.datasets.utils import class_counts_of

IF = 4
# 24 images per class in the tiny folder, exponential profile IF 4.
EXPECTED = long_tailed_counts(24, 10, IF)


def make_cfg(root, tmp_path, train=True, counts=None, head_classes=10):
    load = [
        dict(type='LoadImageFromFile'),
        dict(type='NumpyToPIL', to_rgb=True),
        dict(type='PILToNumpy', to_bgr=False),
    ]
    metric = dict(type='LongTailAccuracy', many_shot_thr=15, few_shot_thr=8)
    if counts is not None:
        metric['class_counts'] = counts
    test_loader = dict(
        batch_size=8,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(
            type='CustomDataset',
            data_root=str(root),
            data_prefix='test',
            test_mode=True,
            pipeline=load + [dict(type='PackInputs')]))
    cfg = dict(
        default_scope='mmpretrain',
        work_dir=str(tmp_path / 'work'),
        model=dict(
            type='ImageClassifier',
            data_preprocessor=dict(
                type='HybridDataPreprocessor',
                num_classes=10,
                mean=[125.0] * 3,
                std=[60.0] * 3),
            backbone=dict(
                type='ResNet_CIFAR',
                depth=18,
                num_stages=1,
                strides=(1, ),
                dilations=(1, ),
                out_indices=(0, ),
                base_channels=8,
                stem_channels=8),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead', num_classes=head_classes,
                in_channels=8)),
        val_dataloader=test_loader,
        val_cfg=dict(),
        val_evaluator=copy.deepcopy(metric),
        test_dataloader=copy.deepcopy(test_loader),
        test_cfg=dict(),
        test_evaluator=copy.deepcopy(metric),
        custom_hooks=[dict(type='ClassCountsHook')],
        default_hooks=dict(logger=dict(type='LoggerHook', interval=100)),
        log_level='WARNING',
    )
    if train:
        cfg.update(
            train_dataloader=dict(
                batch_size=16,
                num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=True),
                dataset=dict(
                    type='LongTailedDataset',
                    imbalance_factor=IF,
                    dataset=dict(
                        type='CustomDataset',
                        data_root=str(root),
                        data_prefix='train',
                        pipeline=load + [dict(type='PackInputs')]))),
            train_cfg=dict(by_epoch=True, max_epochs=1, val_interval=1),
            optim_wrapper=dict(
                optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        )
    return Config(cfg)


def test_counts_from_the_built_training_dataloader(tiny_folder, tmp_path):
    runner = Runner.from_cfg(make_cfg(tiny_folder, tmp_path))
    # While training, the built dataloader's dataset is used, not the
    # config: a config edited after the build would give [24] * 10.
    runner.cfg.train_dataloader.dataset.imbalance_factor = 1
    runner.train()
    metric = runner.val_evaluator.metrics[0]
    assert metric.class_counts == EXPECTED
    assert runner.train_dataloader.dataset.class_counts == EXPECTED
    # Validation ran (the metric raises without counts) within train().
    assert runner.val_evaluator.metrics[0].results == []


def test_counts_from_the_config_in_a_test_only_run(tiny_folder, tmp_path):
    runner = Runner.from_cfg(make_cfg(tiny_folder, tmp_path))
    metrics = runner.test()
    metric = runner.test_evaluator.metrics[0]
    assert metric.class_counts == EXPECTED
    # Groups with the thresholds 15 / 8 on 24 ... 6: all three present.
    counts = np.array(EXPECTED)
    assert (counts > 15).any() and (counts < 8).any()
    assert {
        'long_tail/many', 'long_tail/medium', 'long_tail/few',
        'long_tail/top1', 'long_tail/mean_class_acc'
    } <= set(metrics)
    # The training loop was never built.
    assert not hasattr(runner._train_loop, 'run')


def test_given_counts_are_kept(tiny_folder, tmp_path):
    given = [7] * 10
    runner = Runner.from_cfg(make_cfg(tiny_folder, tmp_path, counts=given))
    runner.test()
    assert runner.test_evaluator.metrics[0].class_counts == given


def test_no_training_set_is_a_clear_error(tiny_folder, tmp_path):
    runner = Runner.from_cfg(make_cfg(tiny_folder, tmp_path, train=False))
    with pytest.raises(
            ValueError,
            match='no training dataset is configured.*set '
            r'class_counts=\[...\]'):
        runner.test()


def test_counting_a_plain_dataset(toy_label_dataset):
    ds = toy_label_dataset([0, 2, 2, 1, 2], num_classes=4)
    assert class_counts_of(ds) == [1, 1, 3, 0]
    assert HOOKS.get('ClassCountsHook') is not None


def _la_cfg(root, tmp_path, **loss):
    cfg = make_cfg(root, tmp_path)
    cfg.model.head.loss = dict(type='LogitAdjustedLoss', **loss)
    cfg.model.head.type = 'LogitAdjustedLinearClsHead'
    return cfg


def test_counts_reach_every_module_that_declares_it_needs_them(
        tiny_folder, tmp_path):
    """The loss and the post-hoc head (``needs_class_counts``) get the
    training set's counts before training, through the protocol."""
    runner = Runner.from_cfg(_la_cfg(tiny_folder, tmp_path))
    runner.train()
    head = runner.model.head
    assert head.loss_module.class_counts.tolist() == EXPECTED
    assert head.class_counts.tolist() == EXPECTED


def test_counts_given_in_the_config_are_kept_by_the_hook(
        tiny_folder, tmp_path):
    given = [5] * 10
    runner = Runner.from_cfg(
        _la_cfg(tiny_folder, tmp_path, class_counts=given))
    runner.train()
    assert runner.model.head.loss_module.class_counts.tolist() == given
    assert runner.model.head.class_counts.tolist() == EXPECTED


def test_counts_before_ema_copies_the_model(tiny_folder, tmp_path):
    """EMAHook copies the model in before_run; the copy must already hold
    the counts (its buffers are synced every step)."""
    cfg = _la_cfg(tiny_folder, tmp_path)
    cfg.custom_hooks = [dict(type='EMAHook'), dict(type='ClassCountsHook')]
    runner = Runner.from_cfg(cfg)
    runner.train()
    ema_hook = [h for h in runner.hooks if type(h).__name__ == 'EMAHook'][0]
    ema_head = ema_hook.ema_model.module.head
    assert ema_head.loss_module.class_counts.tolist() == EXPECTED


def test_without_the_hook_the_loss_says_what_to_do(tiny_folder, tmp_path):
    cfg = _la_cfg(tiny_folder, tmp_path)
    cfg.custom_hooks = []
    runner = Runner.from_cfg(cfg)
    with pytest.raises(
            ValueError,
            match=r'LogitAdjustedLoss: no class counts.*'
            r'ClassCountsHook'):
        runner.train()
