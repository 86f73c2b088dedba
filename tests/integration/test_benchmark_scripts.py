"""The CIFAR-10-LT benchmark scripts, run as commands on tiny generated data.

tools/benchmarks/reproduce_cifar10lt.py (the paper's rows, appended to one
table across invocations) and tools/benchmarks/cifar10lt_short.py (all seven
methods, device and per-sample data paths), 1 epoch at batch 8, checked
against counts computed here from the generated folders.
"""
import json
import math
import sys
from pathlib import Path
from typing import Dict, List

import pytest
from cifar_augment import denormalise, identify_cifar_draws
from conftest import make_image_folder
from PIL import Image
from tool_runner import TOOLS, load_tool, python_tool, run

REPRODUCE = 'benchmarks/reproduce_cifar10lt.py'
SHORT = 'benchmarks/cifar10lt_short.py'
ROWS = ('CE', 'Hybrid-SC', 'Hybrid-PSC')  # the paper's rows
#: The methods of the short benchmark, and the training images a step
#: processes per sample drawn: one view for the CE baselines; two views and a
#: class-balanced image for the paper's hybrids; two views for the hybrids
#: whose classifier reads the uniform views.
METHOD_IMAGES = {
    'CE': 1,
    'LA-CE': 1,
    'CE-CBS': 1,
    'Hybrid-SC': 3,
    'Hybrid-PSC': 3,
    'Hybrid-SC-LA': 2,
    'Hybrid-PSC-LA': 2,
    'Hybrid-SC-LA-const': 2,
    'Hybrid-SC-LA-view': 3,
    'Hybrid-BCL': 3
}
#: Training images per class of the generated long-tailed folders.
LT_COUNTS = [20, 12, 8, 6, 4, 3, 3, 2, 2, 2]
BATCH = 8


@pytest.fixture(scope='session')  # generated files, cheap
def webp_folder(tmp_path_factory) -> Path:
    """A long-tailed folder like cifar10lt_if100_webp: lossless WebP files."""
    png = make_image_folder(
        tmp_path_factory.mktemp('lt_png'), LT_COUNTS, test_per_class=2)
    root = tmp_path_factory.mktemp('lt_webp')
    for path in png.rglob('*.png'):
        target = (root / path.relative_to(png)).with_suffix('.webp')
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(path).save(target, lossless=True)
    return root


def read_table(path: Path) -> List[Dict[str, str]]:
    """The rows of the (only) markdown table of a file, keyed by column."""
    lines = [
        line for line in path.read_text().splitlines() if line.startswith('|')
    ]
    header = [cell.strip() for cell in lines[0].strip('|').split('|')]
    assert set(lines[1]) <= set('|-')
    return [
        dict(zip(header, (c.strip() for c in line.strip('|').split('|'))))
        for line in lines[2:]
    ]


def exp_counts(n_max: int, imbalance_factor: float, num_classes: int = 10):
    """The CIFAR-LT exponential profile (Cao et al.), written out here."""
    return [
        int(n_max * (1 / imbalance_factor)**(i / (num_classes - 1)))
        for i in range(num_classes)
    ]


def test_reproduce_rows_accumulate_across_invocations(webp_folder, tmp_path):
    work_dir = tmp_path / 'reproduce'
    n = sum(LT_COUNTS)  # the WebP copy is read as it is (profile 'none')
    iters = math.ceil(n / BATCH)
    common = [
        '--data-root', webp_folder, '--epochs', 1, '--batch-size', BATCH,
        '--work-dir', work_dir
    ]

    result = run(python_tool(REPRODUCE, 'CE', *common))
    assert 'device: CPU' in result.stdout
    rows = json.loads((work_dir / 'results.json').read_text())['rows']
    assert [r['row'] for r in rows] == ['CE']
    ce = rows[0]
    assert ce['class_counts'] == LT_COUNTS
    assert ce['data_format'] == 'webp'
    assert (ce['iters'], ce['images']) == (iters, n)  # N images per step
    assert 0 <= ce['top1'] <= 100 and ce['published_top1'] == 70.36
    assert ce['images_per_s'] == pytest.approx(ce['images'] / ce['train_s'])
    assert ce['settings']['lr'] == pytest.approx(0.5 * BATCH / 512)
    assert '| CE | ' in result.stdout

    # A second invocation appends its row to the same table.
    run(python_tool(REPRODUCE, 'Hybrid-SC', *common))
    rows = json.loads((work_dir / 'results.json').read_text())['rows']
    assert [r['row'] for r in rows] == ['CE', 'Hybrid-SC']
    assert (rows[1]['iters'], rows[1]['images']) == (iters, 3 * n)
    table = read_table(work_dir / 'results.md')
    assert [r['row'] for r in table] == ['CE', 'Hybrid-SC']
    for row, published in zip(table, ('70.36', '81.40')):
        assert row['published top-1'] == published
        for column in ('top-1', 'train (s)', 'images/s'):
            assert float(row[column]) >= 0
        assert row['few'] != '-'  # classes with < 20 training images


def test_reproduce_resumes_an_interrupted_run(webp_folder, tmp_path,
                                              monkeypatch):
    """A row stopped after epoch 1 of 2 and continued with --resume ends
    where the uninterrupted row ends; the row says it was resumed once and
    records both segments (epochs, CPU, commit, test accuracy every epoch
    with --val-interval 1). Without --resume the row is refused, and so is a
    resume with another memory format."""
    from mmengine.hooks import Hook
    common = [
        '--data-root', webp_folder, '--epochs', 2, '--batch-size', BATCH,
        '--val-interval', 1
    ]
    straight = tmp_path / 'straight'
    run(python_tool(REPRODUCE, 'Hybrid-SC', *common, '--work-dir', straight))

    resumed = tmp_path / 'resumed'
    # the script imports its sibling module as `python SCRIPT` would
    monkeypatch.syspath_prepend(str(TOOLS / 'benchmarks'))
    module = load_tool(REPRODUCE)
    shared = sys.modules['cifar10lt_common']  # as the script imported it
    train_and_test = shared.train_and_test

    class Stop(Hook):
        priority = 'LOWEST'  # after the segment hook has recorded it

        def after_val_epoch(self, runner, metrics=None):
            raise KeyboardInterrupt

    def interrupted(cfg, hooks):
        return train_and_test(cfg, lambda meter: hooks(meter) + [Stop()])

    monkeypatch.setattr(shared, 'train_and_test', interrupted)
    monkeypatch.setattr('sys.argv',
                        [REPRODUCE, 'Hybrid-SC'] + [str(a) for a in common] +
                        ['--work-dir', str(resumed)])
    with pytest.raises(KeyboardInterrupt):
        module.main()
    row_dir = resumed / 'Hybrid-SC'
    segments = json.loads((row_dir / 'segments.json').read_text())
    assert [(s['start_epoch'], s['end_epoch'])
            for s in segments['segments']] == [(0, 1)]
    assert not (resumed / 'results.json').exists()

    again = run(
        python_tool(REPRODUCE, 'Hybrid-SC', *common, '--work-dir', resumed),
        check=False)
    assert again.returncode != 0
    assert 'pass --resume to continue it' in again.stderr
    run(
        python_tool(REPRODUCE, 'Hybrid-SC', *common, '--work-dir', resumed,
                    '--resume'))
    rows = {
        name: json.loads((d / 'results.json').read_text())['rows'][0]
        for name, d in (('straight', straight), ('resumed', resumed))
    }
    assert rows['straight']['resumes'] == 0 and rows['resumed']['resumes'] == 1
    assert rows['resumed']['top1'] == rows['straight']['top1']
    # the costs of both invocations added up
    for key in ('images', 'iters'):
        assert rows['resumed'][key] == rows['straight'][key], key
    assert rows['resumed']['train_s'] == pytest.approx(
        sum(s['train_s'] for s in rows['resumed']['segments']))
    segments = rows['resumed']['segments']
    assert [(s['start_epoch'], s['end_epoch']) for s in segments] == [(0, 1),
                                                                      (1, 2)]
    assert [[v['epoch'] for v in s['val']] for s in segments] == [[1], [2]]
    for seg in segments:
        assert seg['device'].startswith('CPU ')
        assert seg['precision'] == 'fp32'
        assert seg['memory_format'] == 'channels_last'
        assert len(seg['commit'].split()[0]) in (40, 7)  # a sha or 'unknown'
    assert read_table(resumed / 'results.md')[0]['resumes'] == '1'

    # A run keeps its memory format.
    recorded = json.loads((row_dir / 'segments.json').read_text())
    recorded['segments'][0]['memory_format'] = 'contiguous'
    (row_dir / 'segments.json').write_text(json.dumps(recorded))
    refused = run(
        python_tool(REPRODUCE, 'Hybrid-SC', *common, '--work-dir', resumed,
                    '--resume'),
        check=False)
    assert refused.returncode != 0
    assert "memory_format 'contiguous'" in refused.stderr


def test_short_benchmark_resumes_an_interrupted_run(webp_folder, tmp_path,
                                                    monkeypatch):
    """A method stopped after epoch 1 of 2 and continued with --resume ends
    where the uninterrupted run ends (same top-1; steps and images added up
    over both invocations); a finished method is read back, not trained
    again; a run is refused without --resume and with another schedule."""
    from mmengine.hooks import Hook
    common = [
        '--data-root', webp_folder, '--epochs', 2, '--batch-size', BATCH,
        '--methods', 'LA-CE'
    ]
    straight, resumed = tmp_path / 'straight', tmp_path / 'resumed'
    run(python_tool(SHORT, *common, '--work-dir', straight))

    monkeypatch.syspath_prepend(str(TOOLS / 'benchmarks'))
    module = load_tool(SHORT)
    shared = sys.modules['cifar10lt_common']  # as the script imported it
    train_and_test = shared.train_and_test

    class Stop(Hook):
        priority = 'LOWEST'  # after the epoch's checkpoint

        def after_train_epoch(self, runner):
            raise KeyboardInterrupt

    monkeypatch.setattr(
        shared, 'train_and_test', lambda cfg, hooks: train_and_test(
            cfg, lambda meter: hooks(meter) + [Stop()]))
    monkeypatch.setattr('sys.argv', [SHORT] + [str(a) for a in common] +
                        ['--work-dir', str(resumed)])
    with pytest.raises(KeyboardInterrupt):
        module.main()
    run_dir = resumed / 'LA-CE'
    assert [(s['start_epoch'], s['end_epoch'])
            for s in json.loads((run_dir /
                                 'segments.json').read_text())['segments']
            ] == [(0, 1)]
    assert not (run_dir / 'result.json').exists()

    for extra, message in (([], 'pass --resume to continue it'),
                           (['--resume', '--warmup-epochs',
                             1], '--resume: the run in')):
        refused = run(
            python_tool(SHORT, *common, '--work-dir', resumed, *extra),
            check=False)
        assert refused.returncode != 0 and message in refused.stderr
    run(python_tool(SHORT, *common, '--work-dir', resumed, '--resume'))
    results = {
        name: json.loads((d / 'LA-CE' / 'result.json').read_text())
        for name, d in (('straight', straight), ('resumed', resumed))
    }
    n = sum(LT_COUNTS)
    assert results['straight']['resumes'] == 0
    assert results['resumed']['resumes'] == 1
    assert results['resumed']['long_tail/top1'] == \
        results['straight']['long_tail/top1']
    for result in results.values():  # two epochs of N images a step
        assert result['iters'] == 2 * math.ceil(n / BATCH)
        assert result['images'] == 2 * n
        assert result['images_per_s'] == pytest.approx(result['images'] /
                                                       result['train_s'])
        assert 'samples' not in result  # one invocation's count, dropped
    assert read_table(resumed / 'results.md')[0]['resumes'] == '1'

    segments = (run_dir / 'segments.json').read_text()
    again = run(python_tool(SHORT, *common, '--work-dir', resumed, '--resume'))
    assert 'finished before' in again.stdout
    assert (run_dir / 'segments.json').read_text() == segments
    assert read_table(resumed / 'results.md')[0]['top-1'] == \
        f"{results['straight']['long_tail/top1']:.2f}"


def test_short_benchmark_over_seeds_gives_mean_and_spread(
        webp_folder, tmp_path):
    """--seed 0 1: each method runs with each seed (all methods of seed 0
    first) in seed<S>/<method>; the table's accuracies are the mean and the
    sample standard deviation of the seeds' results."""
    import statistics
    methods = ['CE', 'LA-CE']
    run(
        python_tool(SHORT, '--data-root', webp_folder, '--epochs', 1,
                    '--batch-size', BATCH, '--methods', *methods, '--seed', 0,
                    1, '--work-dir', tmp_path))
    results = {
        (seed, method):
        json.loads(
            (tmp_path / f'seed{seed}' / method / 'result.json').read_text())
        for seed in (0, 1)
        for method in methods
    }
    assert results[0, 'CE']['settings']['seed'] == 0
    assert results[1, 'CE']['settings']['seed'] == 1
    finished = sorted(
        results,
        key=lambda key: (tmp_path / f'seed{key[0]}' / key[1] / 'result.json').
        stat().st_mtime_ns)
    assert finished == [(0, 'CE'), (0, 'LA-CE'), (1, 'CE'), (1, 'LA-CE')]
    table = {r['method']: r for r in read_table(tmp_path / 'results.md')}
    assert list(table) == methods
    for method in methods:
        top1 = [results[seed, method]['long_tail/top1'] for seed in (0, 1)]
        mean, spread = table[method]['top-1'].split(' ± ')
        assert float(mean) == pytest.approx(statistics.mean(top1), abs=0.006)
        assert float(spread) == pytest.approx(
            statistics.stdev(top1), abs=0.006)
        assert table[method]['seeds'] == '0 1'
    # each seed's own table too
    assert [
        r['method'] for r in read_table(tmp_path / 'seed1' / 'results.md')
    ] == methods


def checkpoint_counts(work_dir: Path) -> Dict[str, List[int]]:
    """The class counts saved in a run's checkpoint, by state-dict key."""
    import torch
    state = torch.load(
        next(work_dir.glob('epoch_*.pth')),
        map_location='cpu',
        weights_only=False)['state_dict']
    return {
        key: value.tolist()
        for key, value in state.items() if key.endswith('class_counts')
    }


@pytest.mark.parametrize(
    'data_path,methods',
    [
        ('per-sample', ['CE', 'Hybrid-SC', 'CE-CBS', 'Hybrid-PSC-LA']),
        # two invocations of the device path: tests of a size that balances
        # across the test processes
        ('device', ['Hybrid-PSC', 'LA-CE', 'CE-CBS', 'Hybrid-SC-LA']),
        ('device', [
            'Hybrid-PSC-LA', 'Hybrid-SC-LA-const', 'Hybrid-SC-LA-view',
            'Hybrid-BCL'
        ]),
    ])
def test_short_benchmark_data_paths(tiny_folder, tmp_path, data_path, methods):
    # tiny_folder: 24 PNG images in each of 10 classes, cut here at IF 10.
    counts = exp_counts(24, 10)
    n = sum(counts)
    work_dir = tmp_path / data_path
    run(
        python_tool(SHORT, '--data-root', tiny_folder, '--data-path',
                    data_path, '--imbalance-factor', 10, '--epochs', 1,
                    '--batch-size', BATCH, '--num-workers', 0, '--methods',
                    *methods, '--work-dir', work_dir))
    results = json.loads((work_dir / 'results.json').read_text())['results']
    table = {r['method']: r for r in read_table(work_dir / 'results.md')}
    assert list(table) == methods
    for method in methods:
        assert results[method]['class_counts'] == counts
        # Every sampler draws as many samples an epoch as the set has.
        assert int(table[method]['iters']) == math.ceil(n / BATCH)
        assert int(table[method]['images processed']) == \
            METHOD_IMAGES[method] * n
        assert results[method]['images'] == METHOD_IMAGES[method] * n
        assert float(table[method]['images/s']) > 0
        assert results[method]['settings']['train_workers'] == 0
    # The run's config (as the runner dumped it) has the method's loss,
    # sampler and classifier input, and the data path asked for.
    from mmengine.config import Config
    for method in methods:
        cfg = Config.fromfile(
            next((work_dir / method).glob('*/vis_data/config.py')),
            import_custom_modules=False)
        la = method in ('LA-CE', 'Hybrid-SC-LA', 'Hybrid-PSC-LA',
                        'Hybrid-SC-LA-const', 'Hybrid-SC-LA-view',
                        'Hybrid-BCL')
        paper_hybrid = method in ('Hybrid-SC', 'Hybrid-PSC')
        own_view = method in ('Hybrid-SC-LA-view', 'Hybrid-BCL')
        assert cfg.model.head.loss.type == ('LogitAdjustedLoss'
                                            if la else 'CrossEntropyLoss')
        assert cfg.train_dataloader.sampler.type == {
            'CE-CBS': 'ClassBalancedSampler'
        }.get(method,
              'ClassBalancedPairSampler' if paper_hybrid else 'DefaultSampler')
        if method.startswith('Hybrid'):
            # (HybridClassifier's default: 'balanced')
            assert cfg.model.get(
                'cls_input',
                'balanced') == ('balanced' if paper_hybrid else
                                'own_view' if own_view else 'uniform')
            assert cfg.model.feat_head.type == (
                'PSCHead' if 'PSC' in method else
                'BCLHead' if 'BCL' in method else 'SupConHead')
        else:
            assert cfg.model.type == 'ImageClassifier'
        # The training set's counts reached the logit-adjusted loss (saved
        # with the model); the other losses have none.
        assert checkpoint_counts(
            work_dir / method) == ({
                'head.loss_module.class_counts': counts
            } if la else {})
        dataset = cfg.train_dataloader.dataset
        transforms = cfg.data_preprocessor.batch_transforms
        if data_path == 'device':
            assert dataset.hold_in_memory
            assert [t['type'] for t in dataset.pipeline] == ['PackInputs']
            assert [t['type'] for t in transforms] == [
                'BatchRandomCrop', 'BatchRandomFlip', 'BatchRandomGrayscale'
            ]
        else:
            assert not dataset.hold_in_memory and transforms == []
            single_view = METHOD_IMAGES[method] == 1
            first = 'RandomCrop' if single_view else 'MultiView'
            assert dataset.pipeline[0]['type'] == first
            assert (dataset.get('balanced_pipeline') is not None) == \
                paper_hybrid


@pytest.mark.parametrize('script', [REPRODUCE, SHORT])
def test_data_root_without_train_folder(script, tmp_path):
    (tmp_path / 'test').mkdir()
    args = [] if script == SHORT else ['CE']
    result = run(
        python_tool(script, *args, '--data-root', tmp_path), check=False)
    assert result.returncode == 2
    assert '--data-root' in result.stderr and 'train/' in result.stderr
    assert str(tmp_path) in result.stderr


@pytest.mark.parametrize(
    'args,allowed',
    [
        ([REPRODUCE, 'CE', 'Hybrid-XX'], ROWS),
        ([REPRODUCE, 'Hybrid-SC-LA'], ROWS),  # no published row to compare
        ([SHORT, '--methods', 'Hybrid-XX'], tuple(METHOD_IMAGES)),
    ])
def test_unknown_row_lists_the_allowed_ones(args, allowed, webp_folder):
    result = run(python_tool(*args, '--data-root', webp_folder), check=False)
    assert result.returncode == 2
    assert repr(args[-1]) in result.stderr
    assert 'allowed: ' + ', '.join(allowed) + '\n' in result.stderr


def test_short_refuses_imbalance_factor_on_the_webp_copy(webp_folder):
    result = run(
        python_tool(SHORT, '--data-root', webp_folder, '--imbalance-factor',
                    10),
        check=False)
    assert result.returncode == 2
    assert '--imbalance-factor' in result.stderr
    assert 'already long-tailed' in result.stderr


def test_reproduce_refuses_a_foreign_results_file(webp_folder, tmp_path):
    (tmp_path / 'results.json').write_text('{"results": {}}')
    result = run(
        python_tool(REPRODUCE, 'CE', '--data-root', webp_folder, '--work-dir',
                    tmp_path),
        check=False)
    assert result.returncode != 0
    assert 'results.json was not written by this script' in result.stderr


SPEED = 'benchmarks/data_path_speed.py'


@pytest.fixture(scope='session')  # generated files, cheap
def balanced_folder(tmp_path_factory) -> Path:
    """100 training images in each of 10 classes: cut at IF 100 as shipped
    (100 ... 1 per class)."""
    return make_image_folder(
        tmp_path_factory.mktemp('balanced100'), [100] * 10, test_per_class=1)


def test_data_path_speed_prints_consistent_ratios(balanced_folder):
    result = run(
        python_tool(SPEED, '--data-root', balanced_folder, '--modes', 'held',
                    'per-sample', '--iters', 3, '--warmup', 1, '--batch-size',
                    8, '--num-workers', 1))
    rows = [
        line for line in result.stdout.splitlines()
        if line.startswith('| held') or line.startswith('| per-sample')
    ]
    assert [row.split('|')[1].strip()
            for row in rows] == ['held', 'per-sample, 1 workers']
    for row in rows:
        assert row.split('|')[2].strip() == 'channels_last'  # the configs'
        runner, ceiling, ratio = (float(c) for c in row.split('|')[3:6])
        # (c)/(a) is the runner's images/s over the ceiling's.
        assert runner > 0 and ceiling > 0
        assert ratio == pytest.approx(runner / ceiling, abs=2e-3)


def test_data_path_speed_compares_memory_formats(balanced_folder):
    """Both layouts, alternately, twice: one row each (medians) and the
    per-repeat ratio of their runner iterations."""
    result = run(
        python_tool(SPEED, '--data-root', balanced_folder, '--modes', 'held',
                    '--iters', 3, '--warmup', 1, '--batch-size', 8,
                    '--memory-formats', 'contiguous', 'channels_last',
                    '--repeats', 2))
    rows = [
        line.split('|') for line in result.stdout.splitlines()
        if line.startswith('| held')
    ]
    assert [row[2].strip() for row in rows] == ['contiguous', 'channels_last']
    ratio_line = next(line for line in result.stdout.splitlines()
                      if 'channels_last / contiguous' in line)
    per_repeat = ratio_line.split('per repeat: ')[1].split(';')[0]
    assert len(per_repeat.split(', ')) == 2
    assert all(float(r) > 0 for r in per_repeat.split(', '))


def test_ceiling_steps_the_models_weights_on_the_models_images(
        balanced_folder, tmp_path):
    """The ceiling step of data_path_speed.py trains a copy of the model's
    backbone, equal to it before each step, on the very tensor the model's
    backbone was given (3N rows)."""
    import argparse

    import torch
    from mmengine.runner import Runner

    speed = load_tool(SPEED)
    args = argparse.Namespace(
        data_root=str(balanced_folder),
        batch_size=4,
        iters=2,
        warmup=0,
        num_workers=0,
        amp=False)
    runner = Runner.from_cfg(speed.build_cfg('held', args, str(tmp_path)))
    seen = []

    class Check(speed.CeilingHook):

        def _ceiling_step(self):
            model = runner.model.backbone
            for (name, mine), theirs in zip(self.backbone.state_dict().items(),
                                            model.state_dict().values()):
                assert torch.equal(mine, theirs), name
            seen.append(self._images)
            super()._ceiling_step()

    hook = Check(amp=False, warmup=0)
    runner.register_hook(hook)
    inputs = []
    backbone = runner.model.backbone
    # (deep copies of the backbone carry this hook along: count only the
    # model's own calls)
    backbone.register_forward_pre_hook(lambda module, args: inputs.append(args[
        0]) if module is backbone else None)
    runner.train()
    assert len(seen) == 2 and len(inputs) == 2
    for images, given in zip(seen, inputs):
        assert images.shape == (3 * 4, 3, 32, 32)
        assert torch.equal(images, given)


def test_strong_augment_speed_prints_consistent_ratios():
    result = run(
        python_tool('benchmarks/strong_augment_speed.py', '--batch-size', 4,
                    '--repeats', 2))
    ms = {}
    for line in result.stdout.splitlines():
        if ' ms per batch' in line:
            name, rest = line.split(': ', 1)
            ms[name] = float(rest.split(' ms')[0])
    assert set(ms) == {'batched_strong', 'per_sample_strong', 'batched_paper'}
    ratio = float(
        result.stdout.split('batched_strong / per_sample_strong (time): ')
        [1].split()[0])
    # Printed times are rounded to 0.1 ms: compare within that rounding.
    low = (ms['batched_strong'] - 0.05) / (ms['per_sample_strong'] + 0.05)
    high = (ms['batched_strong'] + 0.05) / max(ms['per_sample_strong'] - 0.05,
                                               1e-9)
    assert low - 0.005 <= ratio <= high + 0.005


def _short_runner(folder: Path, work_dir: Path, method: str, data_path: str,
                  seed: int, num_workers: int):
    """The runner of one method of the short benchmark on ``folder`` (cut
    at IF 10), batch :data:`BATCH`, as ``cifar10lt_short.py`` builds it."""
    import argparse

    from mmengine.runner import Runner

    common = load_tool('benchmarks/cifar10lt_common.py')
    args = argparse.Namespace(
        data_root=str(folder),
        work_dir=str(work_dir),
        epochs=1,
        batch_size=BATCH,
        amp=False,
        seed=seed)
    return Runner.from_cfg(
        common.build_run_cfg(
            method,
            args,
            imbalance_factor=10,
            data_path=data_path,
            num_workers=num_workers))


@pytest.mark.parametrize('method', ['CE', 'Hybrid-SC'])
@pytest.mark.parametrize('data_path', ['device', 'per-sample'])
def test_both_data_paths_feed_augmentations_of_the_sampled_images(
        tiny_folder, tmp_path, method, data_path):
    """What the model is given in a training step of the short benchmark,
    on either data path: every row is the paper's augmentation (crop with
    zero padding, flip, grey) of the image the sampler drew for it, with
    that image's label, the views of the uniform images first and the
    balanced images last. Checked image by image against the decoded
    training set, so that the two paths can differ in their random draws
    only."""
    import torch

    runner = _short_runner(
        tiny_folder, tmp_path, method, data_path, seed=0, num_workers=0)
    loader = runner.train_loop.dataloader
    drawn = list(iter(loader.sampler))[:BATCH]
    out = runner.model.data_preprocessor(next(iter(loader)), training=True)
    pre = runner.model.data_preprocessor
    source = loader.dataset.dataset  # the long-tailed set, decoded (RGB)

    if method == 'CE':
        rows, samples = out['inputs'], out['data_samples']
        indices = drawn
    else:
        inputs, samples = out['inputs'], out['data_samples']
        assert len(inputs['views']) == 2
        rows = torch.cat(inputs['views'] + [inputs['balanced']])
        uniform, balanced = [i for i, _, _ in drawn], [j for _, j, _ in drawn]
        indices = uniform * 2 + balanced
        samples = list(samples['uniform']) * 2 + list(samples['balanced'])
    assert rows.shape == (len(indices), 3, 32, 32)
    decoded = [source[index] for index in indices]
    # Each row is exactly one crop / flip / grey outcome of its image.
    identify_cifar_draws(
        denormalise(pre, rows, to_rgb=False),
        torch.stack(
            [torch.from_numpy(d['img']).permute(2, 0, 1) for d in decoded]))
    assert [int(s.gt_label)
            for s in samples] == [int(d['gt_label']) for d in decoded]


def test_both_data_paths_start_from_the_same_weights(tiny_folder, tmp_path):
    """The two data paths of the short benchmark build their training sets
    differently (decoded whole, or read per sample in workers) before the
    runner initialises the model: with one seed both start training from
    the same weights, tensor for tensor."""
    import torch
    from mmengine.hooks import Hook

    weights = {}

    class Grab(Hook):

        def __init__(self, path):
            self.path = path

        def before_train(self, runner):
            # after the runner's weight initialisation, before any step
            weights[self.path] = {
                key: value.clone()
                for key, value in runner.model.state_dict().items()
            }

    for data_path in ('device', 'per-sample'):
        runner = _short_runner(
            tiny_folder,
            tmp_path / data_path,
            'CE',
            data_path,
            seed=3,
            num_workers=1)
        runner.register_hook(Grab(data_path))
        # (train() builds the training set, then initialises the weights)
        runner.train()
    device, per_sample = weights['device'], weights['per-sample']
    assert list(device) == list(per_sample) and len(device) > 100
    for key, value in device.items():
        assert torch.equal(value, per_sample[key]), key
    # (initialised weights, not zeros left by a skipped initialisation)
    assert not torch.equal(device['backbone.conv1.weight'],
                           torch.zeros_like(device['backbone.conv1.weight']))


def test_short_benchmark_scales_the_configs_own_schedule():
    """Milestones, warm-up and cosine lengths scale with --epochs (written
    out by hand here); --warmup-epochs resizes the config's own warm-up or
    puts one first."""
    common = load_tool('benchmarks/cifar10lt_common.py')
    scale = common.scale_schedule
    paper = dict(
        type='MultiStepLR', by_epoch=True, milestones=[120, 160], gamma=0.1)
    assert scale(paper, 200, 20) == [dict(paper, milestones=[12, 16])]
    assert scale(paper, 200, 7)[0]['milestones'] == [4, 6]  # 4.2, 5.6
    strong = [
        dict(
            type='LinearLR',
            start_factor=0.01,
            by_epoch=True,
            begin=0,
            end=5,
            convert_to_iter_based=True),
        dict(
            type='CosineAnnealingLR',
            eta_min=0.0,
            by_epoch=True,
            begin=5,
            end=200,
            convert_to_iter_based=True)
    ]
    twenty = scale(strong, 200, 20)
    # 5 of 200 epochs is 0.5 at 20: a warm-up stays at least one epoch
    assert [(s['begin'], s['end']) for s in twenty] == [(0, 1), (1, 20)]
    assert [(s['begin'], s['end'])
            for s in scale(strong, 200, 400)] == [(0, 10), (10, 400)]
    assert strong[0]['end'] == 5  # the config is not changed
    # An iteration-based scheduler is kept.
    iters = dict(type='LinearLR', by_epoch=False, begin=0, end=500)
    assert scale([iters], 200, 20) == [iters]
    # --warmup-epochs: the config's own warm-up resized, the next one moved
    assert [(s['begin'], s['end'])
            for s in scale(strong, 200, 20, 2)] == [(0, 2), (2, 20)]
    # ... or a linear one put first
    warm = scale(paper, 200, 20, 1)
    assert warm[0] == dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True)
    assert warm[1]['milestones'] == [12, 16]
    assert common.describe_schedule(warm) == (
        'LinearLR[0, 1) x0.01..1; MultiStepLR[0, end) milestones [12, 16] '
        'x0.1')


def test_short_refuses_a_classifier_view_on_the_per_sample_path(
        tiny_folder, tmp_path):
    """The per-sample path has no classifier view of its own: refused,
    naming the method and the path to use."""
    result = run(
        python_tool(SHORT, '--data-root', tiny_folder, '--data-path',
                    'per-sample', '--methods', 'Hybrid-BCL', '--epochs', 1,
                    '--work-dir', tmp_path),
        check=False)
    assert result.returncode != 0
    assert 'Hybrid-BCL reads a classifier view of its own' in result.stderr
    assert '--data-path device' in result.stderr


def test_cpu_step_speed_prints_a_row_per_setting():
    result = run(
        python_tool('benchmarks/cpu_step_speed.py', '--batch', 4, '--steps', 2,
                    '--threads', 1, '--settings', 'fp32',
                    'fp32-channels-last'))
    assert result.stdout.startswith('# ')
    rows = [
        line.split('|') for line in result.stdout.splitlines()
        if line.startswith('| fp32')
    ]
    assert [row[1].strip() for row in rows] == ['fp32', 'fp32-channels-last']
    assert float(rows[0][4]) == 1.0  # the first setting against itself
    for row in rows:
        assert len(row[5].split(',')) == 2  # one ratio per timed step
