"""ModelDataCheckHook: the model checked against its training data before
training: each head's num_classes, the label range, the rows per step a
feature head declares it needs, class priors given in the config; and every
evaluation against the model's training data: LongTailAccuracy's counts,
the evaluation set's classes."""
from types import SimpleNamespace

import pytest
from conftest import tiny_hybrid_cfg
from mmengine.runner import Runner
from mmpretrain.registry import MODELS
from test_class_counts_hook import EXPECTED, make_cfg

import mmlt_hybrid  # noqa: F401
from mmlt_hybrid.engine.hooks import ModelDataCheckHook

NUM_CLASSES = 4


def hybrid(feat_head='SupConHead', **kwargs):
    return MODELS.build(tiny_hybrid_cfg(NUM_CLASSES, feat_head, **kwargs))


@pytest.mark.parametrize('feat_head', ['SupConHead', 'PSCHead'])
@pytest.mark.parametrize('labels,bad', [
    ([0, 7, 1, 1, 3], 7),
    ([0, 1, 1, 4, 3], 4),
    ([0, 1, -1, 1, 9], -1),
])
def test_labels_outside_the_heads_range_are_refused(feat_head, labels, bad,
                                                    toy_label_dataset):
    with pytest.raises(
            ValueError,
            match=rf'training label {bad} is out of '
            r"range for the heads' num_classes=4 \(labels in "
            r"\[0, 3\]\); set it to the dataset's"):
        ModelDataCheckHook().check_labels(
            hybrid(feat_head), toy_label_dataset(labels))


def test_labels_in_range_pass_and_either_head_counts(toy_label_dataset):
    hook = ModelDataCheckHook()
    hook.check_labels(hybrid('PSCHead'), toy_label_dataset([0, 3, 1, 2, 3]))
    # A classifier head without num_classes: the feature head's is used.
    model = hybrid('PSCHead', head=dict(type='ClsHead'))
    with pytest.raises(
            ValueError,
            match="label 4 is out of range for the "
            "heads' num_classes=4"):
        hook.check_labels(model, toy_label_dataset([0, 4]))
    # Neither head has classes: nothing to check against.
    hook.check_labels(
        hybrid(head=dict(type='ClsHead')), toy_label_dataset([0, 40, 1]))


@pytest.mark.parametrize('head_classes', [20, 9])
def test_head_classes_must_match_the_training_set(tiny_folder, tmp_path,
                                                  head_classes):
    """A 20-class head on the 10 classes of the tiny folder trains silently
    otherwise (a 9-class one fails in the loss with an opaque index
    error); both are refused before the first step, naming both numbers."""
    cfg = make_cfg(tiny_folder, tmp_path, head_classes=head_classes)
    cfg.custom_hooks.append(dict(type='ModelDataCheckHook'))
    runner = Runner.from_cfg(cfg)
    with pytest.raises(
            ValueError,
            match=rf'ModelDataCheckHook: model\.head\.num_classes='
            rf'{head_classes} .*training set .* has 10 classes'):
        runner.train()
    assert not list((tmp_path / 'work').glob('*.pth'))


@pytest.mark.parametrize(
    'batch_size,views,world,refused',
    [
        (1, 2, 1, True),  # 2 rows: a positive pair with nothing to contrast
        (2, 1, 1, True),
        (1, 3, 1, False),  # 3 rows
        (3, 1, 1, False),
        (1, 2, 2, False),  # the rows of two processes, gathered
    ])
def test_rows_per_step_the_feature_head_declares(batch_size, views, world,
                                                 refused, monkeypatch):
    """SupConHead declares 3 rows (its loss's min_rows), counted over the
    processes when the loss gathers them; PSCHead declares none."""
    from mmlt_hybrid.engine.hooks import model_data_check_hook
    monkeypatch.setattr(model_data_check_hook, 'get_world_size', lambda: world)
    model = hybrid(data_preprocessor=dict(num_views=views))
    assert model.feat_head.min_rows_per_step == 3
    assert model.feat_head.rows_across_ranks is True
    loader = SimpleNamespace(batch_size=batch_size, dataset=None)
    check = ModelDataCheckHook.check_rows_per_step
    if refused:
        with pytest.raises(
                ValueError,
                match=rf'SupConHead\) needs at least 3 rows per '
                rf'step and gets {batch_size * views * world} '
                rf'row\(s\) \(train_dataloader.batch_size='
                rf'{batch_size} per process x {views} view'):
            check(model, loader)
    else:
        check(model, loader)
    psc = hybrid('PSCHead', data_preprocessor=dict(num_views=1))
    assert psc.feat_head.min_rows_per_step == 1
    check(psc, SimpleNamespace(batch_size=1, dataset=None))


def test_no_engine_module_imports_a_loss():
    """A head declares what it needs; the hooks import no loss."""
    from pathlib import Path

    import mmlt_hybrid.engine.hooks as hooks
    for path in Path(hooks.__file__).parent.glob('*.py'):
        imports = [
            line for line in path.read_text().splitlines()
            if line.startswith(('import ', 'from '))
        ]
        assert not [line for line in imports if 'losses' in line], path.name


@pytest.mark.parametrize('loss', ['LogitAdjustedLoss', 'BalancedSoftmaxLoss'])
def test_a_prior_correcting_loss_on_a_balanced_stream_is_refused(loss):
    """The paper's balanced branch, or a class-balanced sampler with any
    model: refused; the long-tailed stream, or plain CE: accepted."""
    check = ModelDataCheckHook.check_prior_on_balanced_stream
    head = dict(
        type='LinearClsHead',
        num_classes=NUM_CLASSES,
        in_channels=64,
        loss=dict(type=loss, class_counts=[4, 3, 2, 1]))
    plain = SimpleNamespace(sampler=SimpleNamespace())
    with pytest.raises(
            ValueError,
            match=rf"model\.head\.loss {loss} "
            r"corrects for the training set's long-tailed prior, "
            r".*cls_input='balanced'.*double correction"):
        check(hybrid(head=head), plain)
    uniform = hybrid(
        head=head, cls_input='uniform', data_preprocessor=dict(num_views=2))
    check(uniform, plain)
    from mmlt_hybrid.datasets import ClassBalancedSampler
    balanced = SimpleNamespace(
        sampler=ClassBalancedSampler.__new__(ClassBalancedSampler))
    with pytest.raises(
            ValueError,
            match=r'class-balanced batches \(train_'
            r'dataloader\.sampler ClassBalancedSampler\)'):
        check(uniform, balanced)
    ce = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='CifarResNet', depth=8),
            neck=dict(type='GlobalAveragePooling'),
            head=head))
    with pytest.raises(ValueError, match='ClassBalancedSampler'):
        check(ce, balanced)
    check(ce, plain)
    check(hybrid(), balanced)  # cross-entropy: nothing to correct twice


# --- against the training data at evaluation ------------------------------


def _build_counter(monkeypatch):
    """Count the LongTailedDataset builds of ClassCountsHook (the training
    set built for the counts when only testing)."""
    from mmlt_hybrid.engine.hooks import class_counts_hook
    builds = []
    build = class_counts_hook.DATASETS.build

    def counting(cfg, *args, **kwargs):
        builds.append(cfg.get('type'))
        return build(cfg, *args, **kwargs)

    monkeypatch.setattr(class_counts_hook.DATASETS, 'build', counting)
    return builds  # LongTailedDataset, then the CustomDataset it wraps


@pytest.mark.parametrize(
    'counts', [[1] * 9 + [1000], EXPECTED[:9], EXPECTED[::-1]],
    ids=['1000-last', 'nine', 'reversed'])
def test_metric_counts_other_than_the_training_sets_are_refused(
        tiny_folder, tmp_path, counts, monkeypatch):
    """When only testing (the training set built once, by ClassCountsHook)
    and before training (the validation metric)."""
    builds = _build_counter(monkeypatch)
    cfg = make_cfg(tiny_folder, tmp_path, counts=counts)
    cfg.custom_hooks.append(dict(type='ModelDataCheckHook'))
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError) as error:
        runner.test()
    message = str(error.value)
    assert f'test_evaluator LongTailAccuracy class_counts={counts}' in \
        message
    assert f"training set's class counts {EXPECTED}" in message
    assert builds.count('LongTailedDataset') == 1  # ClassCountsHook's
    runner = Runner.from_cfg(cfg)
    with pytest.raises(
            ValueError,
            match=r'val_evaluator LongTailAccuracy '
            rf'class_counts=\[{counts[0]}, '):
        runner.train()
    assert not list((tmp_path / 'work').glob('*.pth'))


def test_metric_counts_equal_to_the_training_sets_pass(tiny_folder, tmp_path,
                                                       monkeypatch):
    builds = _build_counter(monkeypatch)
    cfg = make_cfg(tiny_folder, tmp_path, counts=list(EXPECTED), train=True)
    cfg.custom_hooks.append(dict(type='ModelDataCheckHook'))
    metrics = Runner.from_cfg(cfg).test()
    assert 'long_tail/top1' in metrics
    assert builds.count('LongTailedDataset') == 1
    # No training set configured: nothing to compare, said at INFO.
    cfg = make_cfg(tiny_folder, tmp_path, train=False, counts=[1] * 10)
    cfg.custom_hooks = [dict(type='ModelDataCheckHook')]
    assert 'long_tail/top1' in Runner.from_cfg(cfg).test()


def _logged(logger_level='INFO'):
    """A context giving the records of the current MMLogger."""
    import logging
    from contextlib import contextmanager

    from mmengine.logging import MMLogger

    @contextmanager
    def logged():
        records = []
        handler = logging.Handler(level=logger_level)
        handler.emit = records.append
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logger_level)
        logger.addHandler(handler)
        try:
            yield records
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)

    return logged()


@pytest.mark.parametrize(
    'head', [
        dict(
            type='LinearClsHead',
            num_classes=NUM_CLASSES,
            in_channels=64,
            loss=dict(type='LogitAdjustedLoss', class_counts=[1, 1, 1, 9])),
        dict(
            type='LinearClsHead',
            num_classes=NUM_CLASSES,
            in_channels=64,
            loss=dict(type='BalancedSoftmaxLoss', class_counts=[4, 3, 2])),
        dict(
            type='LogitAdjustedLinearClsHead',
            num_classes=NUM_CLASSES,
            in_channels=64,
            class_counts=[1, 1, 1, 9]),
    ],
    ids=['logit-adjusted', 'balanced-softmax-3', 'posthoc-head'])
def test_prior_counts_other_than_the_training_sets_are_warned_about(head):
    """A chosen target prior may be meant: a warning naming both, no
    error; the training set's own counts, or none given, say nothing."""
    model = hybrid(
        head=head, cls_input='uniform', data_preprocessor=dict(num_views=2))
    hook = ModelDataCheckHook()
    given = head.get('class_counts') or head['loss']['class_counts']
    key = 'model.head' + ('.loss' if 'loss' in head else '')
    with _logged('WARNING') as records:
        hook.check_prior_counts(model, [4, 3, 2, 1])
    assert len(records) == 1
    message = records[0].getMessage()
    assert message.startswith(
        f'ModelDataCheckHook: {key}.class_counts={given} '
        f'({len(given)} classes)')
    assert "differ from the training set's class counts [4, 3, 2, 1]" in \
        message and 'used as given' in message
    with _logged('WARNING') as records:
        hook.check_prior_counts(model, given)
        unset = dict(head)
        unset.pop('class_counts', None)
        if 'loss' in unset:
            unset['loss'] = dict(type=unset['loss']['type'])
        hook.check_prior_counts(
            hybrid(
                head=unset,
                cls_input='uniform',
                data_preprocessor=dict(num_views=2)), [4, 3, 2, 1])
    assert records == []


def _classes_runner(classes):
    """A test-only runner whose test set names ``classes``."""
    dataset = SimpleNamespace(metainfo=dict(classes=classes))
    loop = SimpleNamespace(
        dataloader=SimpleNamespace(dataset=dataset),
        evaluator=SimpleNamespace(metrics=[]))
    return SimpleNamespace(
        test_loop=loop, val_loop=loop, _train_loop=None, hooks=[], cfg={})


TRAINED = ('airplane', 'automobile', 'bird', 'cat', 'deer')


@pytest.mark.parametrize(
    'classes,expected', [
        (['airplane', 'bird', 'car', 'cat', 'deer'],
         "missing ['automobile']; extra ['car']; labels whose class differs "
         "(renamed or reordered, label: trained -> here): 1: 'automobile' -> "
         "'bird', 2: 'bird' -> 'car'"),
        (list(TRAINED[:4]), "5 trained, 4 here; missing ['deer']"),
        (list(TRAINED) + ['dog'], "5 trained, 6 here; extra ['dog']"),
        (['automobile', 'airplane', 'bird', 'cat', 'deer'
          ], "0: 'airplane' -> 'automobile', 1: 'automobile' -> 'airplane'"),
    ],
    ids=['renamed', 'missing', 'extra', 'reordered'])
@pytest.mark.parametrize('split', ['test', 'val'])
def test_evaluation_classes_other_than_the_checkpoints_are_refused(
        classes, expected, split):
    hook = ModelDataCheckHook()
    runner = _classes_runner(classes)
    hook.after_load_checkpoint(
        runner, dict(meta=dict(dataset_meta=dict(classes=TRAINED))))
    with pytest.raises(ValueError) as error:
        getattr(hook, f'before_{split}')(runner)
    message = str(error.value)
    assert message.startswith(
        f'ModelDataCheckHook: the {split} set ({split}_dataloader.dataset, '
        "SimpleNamespace) has other classes than the checkpoint's training "
        'set (meta.dataset_meta)')
    assert expected in message


def test_evaluation_classes_equal_or_unknown_pass():
    hook = ModelDataCheckHook()
    runner = _classes_runner(list(TRAINED))
    hook.after_load_checkpoint(
        runner, dict(meta=dict(dataset_meta=dict(classes=list(TRAINED)))))
    hook.before_test(runner)
    # An older or foreign checkpoint: accepted, said at INFO.
    hook = ModelDataCheckHook()
    runner = _classes_runner(['x', 'y'])
    hook.after_load_checkpoint(runner, dict(meta=dict(epoch=3)))
    with _logged('INFO') as records:
        hook.before_test(runner)
    assert [r.levelname for r in records] == ['INFO']
    assert 'the checkpoint has no dataset_meta classes' in \
        records[0].getMessage()
    # No checkpoint loaded (a model evaluated as initialised): nothing.
    ModelDataCheckHook().before_test(_classes_runner(['x']))
