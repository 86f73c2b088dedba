"""TensorBoard logging of a hybrid run, next to the JSON scalars.

The switch is the one line README.md shows, added to a config that inherits
the experiment: mmengine's ``TensorboardVisBackend`` next to the
``LocalVisBackend`` of configs/_base_/default_runtime.py. The event file must
hold the losses, alpha, the learning rate and the long-tail accuracies, and
``scalars.json`` must still be there for tools/analysis/plot_long_tail.py.

``tensorboard`` is in the ``tests`` extra of pyproject.toml, so CI has it:
a missing package fails these tests, it does not skip them.
"""
import re

import pytest
import tomllib
from tensorboard.backend.event_processing import event_accumulator
from tool_runner import REPO_ROOT, load_tool, python_tool, run, scalars

#: The switch, as README.md shows it.
SWITCH = ("visualizer = dict(vis_backends=[dict(type='LocalVisBackend'), "
          "dict(type='TensorboardVisBackend')])")


def _requirement_names(requirements):
    return {
        re.split(r'[<>=!~\[; ]', r, maxsplit=1)[0].lower()
        for r in requirements
    }


def test_tensorboard_is_an_extra_and_installed_by_the_tests_extra():
    with open(REPO_ROOT / 'pyproject.toml', 'rb') as f:
        extras = tomllib.load(f)['project']['optional-dependencies']
    assert _requirement_names(extras['tensorboard']) == {'tensorboard'}
    tensorboard = extras['tensorboard'][0]
    # A lower bound (the first release that works with NumPy 2), no cap;
    # constraints.txt pins the tested version.
    assert tensorboard == 'tensorboard>=2.17.1'
    assert tensorboard in extras['tests']
    pins = (REPO_ROOT / 'constraints.txt').read_text().splitlines()
    assert len([p for p in pins if p.startswith('tensorboard==')]) == 1


@pytest.fixture(scope='module')
def tb_run(tmp_path_factory):
    """The tiny Hybrid-SC run, 2 epochs validated after each, TensorBoard on.

    Thresholds 15 / 5 split its training counts 24, 18, 14, 11, 8, 6, 5, 4,
    3, 2 into 2 many-, 5 medium- and 3 few-shot classes; the learning rate
    drops x0.1 after epoch 1.
    """
    root = tmp_path_factory.mktemp('tensorboard')
    config = root / 'tiny_hybrid_sc_tensorboard.py'
    base = REPO_ROOT / 'tests' / 'configs' / 'tiny_hybrid_sc.py'
    config.write_text(
        f"_base_ = [{str(base)!r}]\n"
        f"{SWITCH}\n"
        "train_cfg = dict(max_epochs=2, val_interval=1)\n"
        "param_scheduler = dict(milestones=[1])\n"
        "val_evaluator = dict(many_shot_thr=15, few_shot_thr=5)\n"
        "test_evaluator = val_evaluator\n")
    work_dir = root / 'run'
    run(python_tool('train.py', config, '--work-dir', work_dir))
    events = sorted(work_dir.glob('*/vis_data/events.out.tfevents.*'))
    assert len(events) == 1, events
    accumulator = event_accumulator.EventAccumulator(
        str(events[0]), size_guidance={
            'scalars': 0,
        }).Reload()
    curves = {
        tag: {
            e.step: e.value
            for e in accumulator.Scalars(tag)
        }
        for tag in accumulator.Tags()['scalars']
    }
    return work_dir, curves


def test_event_file_has_losses_alpha_and_lr_of_every_iteration(tb_run):
    _, curves = tb_run
    steps = list(range(1, 13))  # 6 iterations an epoch, each logged
    for tag in ('loss', 'loss_feat', 'loss_cls', 'alpha', 'lr'):
        assert sorted(curves[tag]) == steps, tag
    # By hand: alpha = 1 - (T / 2)^2 for epoch T = 0, 1; lr 0.0625, then
    # x0.1 from epoch 1 on.
    for step in steps:
        first = step <= 6
        assert curves['alpha'][step] == pytest.approx(1.0 if first else 0.75)
        assert curves['lr'][step] == pytest.approx(
            0.0625 if first else 0.00625)
        assert curves['loss'][step] == pytest.approx(
            curves['loss_feat'][step] + curves['loss_cls'][step], rel=1e-5)


def test_event_file_has_the_long_tail_accuracies_of_every_validation(tb_run):
    work_dir, curves = tb_run
    names = ('top1', 'mean_class_acc', 'many', 'medium', 'few')
    for name in names:
        assert sorted(curves[f'long_tail/{name}']) == [1, 2], name
    val = [r for r in scalars(work_dir) if 'long_tail/top1' in r]
    assert [r['step'] for r in val] == [1, 2]
    for record in val:
        step = record['step']
        for name in names:
            assert curves[f'long_tail/{name}'][step] == pytest.approx(
                record[f'long_tail/{name}'], abs=1e-4)
        # The groups of 2, 5 and 3 classes average to the mean class acc.
        mean = (2 * curves['long_tail/many'][step] +
                5 * curves['long_tail/medium'][step] +
                3 * curves['long_tail/few'][step]) / 10
        assert mean == pytest.approx(
            curves['long_tail/mean_class_acc'][step], abs=1e-4)


def test_plot_tool_still_reads_the_json_scalars(tb_run):
    work_dir, curves = tb_run
    tool = load_tool('analysis/plot_long_tail.py')
    records = tool.read_scalars(str(work_dir))
    assert [r['step'] for r in records] == list(range(1, 13))
    for record in records:
        step = record['step']
        assert record['alpha'] == pytest.approx(curves['alpha'][step])
        assert record['loss'] == pytest.approx(curves['loss'][step], rel=1e-6)
