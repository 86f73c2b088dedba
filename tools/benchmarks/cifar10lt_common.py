"""Config building, timing and tables shared by the CIFAR-10-LT benchmarks.

Used by ``cifar10lt_short.py`` (the seven methods of :data:`METHODS` at a
short budget) and ``reproduce_cifar10lt.py`` (the paper's recipe for its
rows, :data:`PAPER_METHODS`, one row at a time). Both run a method's shipped
experiment config on an image-folder copy of the data:

- ``png``: a balanced folder copy of CIFAR-10
  (``<root>/{train,test}/<class>/*.png``, e.g. ``$MMLT_DATA_ROOT/cifar10``),
  cut to CIFAR-10-LT by ``LongTailedDataset`` (exponential profile);
- ``webp``: the compact, already long-tailed copy
  (``<root>/{train,test}/<class>/*.webp``, e.g.
  ``$MMLT_DATA_ROOT/cifar10lt_if100_webp``), read with
  ``ImageFolderDataset(extensions=('.webp',))`` inside
  ``LongTailedDataset(profile='none')`` (cutting it again would select a
  different subset).

``MMLT_DATA_ROOT`` is the folder that holds the data sets, by default
``../shared/data`` (README.md, "Tests and CI"); the scripts take the path
on the command line.

Only the standard library is imported at module level, so that the scripts
can check their command line (and fail fast on a bad one) before torch and
mmengine are loaded.
"""
import argparse
import copy
import glob
import json
import os
import os.path as osp
import subprocess
import time
from datetime import datetime
from typing import Dict, List, Optional, Sequence

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: The methods (table rows) and their shipped configs: cross-entropy on
#: uniformly sampled images, with logit adjustment (LA-CE) and with
#: class-balanced sampling (CE-CBS); the paper's hybrids (classifier on a
#: class-balanced batch), those whose classifier reads the uniform views
#: with logit-adjusted cross-entropy (-LA), and the second attempt beyond
#: the paper: constant weights (-const), plus a classifier view of its own
#: (-view), plus the balanced contrastive loss (BCL).
METHODS = {
    'CE': 'configs/ce_r32_cifar10lt.py',
    'LA-CE': 'configs/ce_la_r32_cifar10lt.py',
    'CE-CBS': 'configs/ce_cbs_r32_cifar10lt.py',
    'Hybrid-SC': 'configs/hybrid_sc_r32_cifar10lt.py',
    'Hybrid-PSC': 'configs/hybrid_psc_r32_cifar10lt.py',
    'Hybrid-SC-LA': 'configs/hybrid_sc_la_r32_cifar10lt.py',
    'Hybrid-PSC-LA': 'configs/hybrid_psc_la_r32_cifar10lt.py',
    'Hybrid-SC-LA-const': 'configs/hybrid_sc_la_const_r32_cifar10lt.py',
    'Hybrid-SC-LA-view': 'configs/hybrid_sc_la_view_r32_cifar10lt.py',
    'Hybrid-BCL': 'configs/hybrid_bcl_r32_cifar10lt.py',
}
#: Methods whose classifier reads a view of its own, made on the device
#: (cls_input='own_view'); the per-sample path has no such layout.
OWN_VIEW_METHODS = ('Hybrid-SC-LA-view', 'Hybrid-BCL')
#: The methods of the paper's CIFAR-10-LT table.
PAPER_METHODS = ('CE', 'Hybrid-SC', 'Hybrid-PSC')
FOLDER_DATA = 'configs/_base_/datasets/cifar10lt_folder.py'
PER_SAMPLE_DATA = 'configs/_base_/datasets/cifar10lt_per_sample.py'
DATA_PATHS = ('device', 'per-sample')
DATA_FORMATS = ('png', 'webp')
#: What a resumed run keeps from its first segment (:func:`prepare_resume`).
KEPT = ('precision', 'memory_format')


def method_name(value: str, allowed: Sequence[str] = tuple(METHODS)) -> str:
    """argparse ``type``: a method (row) name, case-insensitive.

    Args:
        value (str): The name given on the command line.
        allowed (Sequence[str]): The names accepted. Defaults to all of
            :data:`METHODS`.

    Returns:
        str: The name as :data:`METHODS` spells it.

    Raises:
        argparse.ArgumentTypeError: Naming the value and the allowed names.
    """
    for name in allowed:
        if value.lower() == name.lower():
            return name
    raise argparse.ArgumentTypeError(
        f'unknown method {value!r}; allowed: {", ".join(allowed)}')


def paper_method_name(value: str) -> str:
    """argparse ``type``: one of the paper's rows (:data:`PAPER_METHODS`),
    case-insensitive (see :func:`method_name`)."""
    return method_name(value, PAPER_METHODS)


def positive_int(value: str) -> int:
    """argparse ``type``: an int >= 1."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(
            f'must be a positive integer, got {value!r}')
    return number


def non_negative_int(value: str) -> int:
    """argparse ``type``: an int >= 0."""
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(
            f'must be an integer >= 0, got {value!r}')
    return number


def data_format(data_root: str, option: str = '--data-root') -> str:
    """Which copy of the data ``data_root`` is: ``'webp'`` or ``'png'``.

    ``'webp'`` when ``<data_root>/train/`` holds ``.webp`` files (the
    compact long-tailed copy), else ``'png'`` (a balanced copy of CIFAR-10,
    cut by the long-tail protocol).

    Args:
        data_root (str): The folder given on the command line.
        option (str): The command-line option, named in errors.

    Raises:
        FileNotFoundError: If ``train/`` or ``test/`` is missing.
    """
    for split in ('train', 'test'):
        if not osp.isdir(osp.join(data_root, split)):
            raise FileNotFoundError(
                f'{option} {data_root!r} has no {split}/ folder; expected an '
                'image-folder copy of CIFAR-10 (<root>/{train,test}/<class>/'
                '*.png, e.g. $MMLT_DATA_ROOT/cifar10) or the long-tailed '
                'WebP copy (<root>/{train,test}/<class>/*.webp, e.g. '
                '$MMLT_DATA_ROOT/cifar10lt_if100_webp), MMLT_DATA_ROOT '
                'being by default ../shared/data')
    pattern = osp.join(glob.escape(data_root), 'train', '*', '*.webp')
    return 'webp' if next(glob.iglob(pattern), None) else 'png'


def check_data_root(parser: argparse.ArgumentParser,
                    args: argparse.Namespace) -> None:
    """Set ``args.data_format`` from ``args.data_root``, or exit with a
    usage error naming ``--data-root`` (see :func:`data_format`)."""
    try:
        args.data_format = data_format(args.data_root)
    except FileNotFoundError as err:
        parser.error(str(err))


#: Keys of a parameter scheduler that count epochs (with ``by_epoch``).
_EPOCH_KEYS = ('begin', 'end', 'T_max', 'step_size')


def _scaled(epoch, ratio: float):
    """An epoch boundary scaled by ``ratio``: 0 (and a non-number) stays,
    any other boundary stays at least 1 epoch."""
    if epoch == 0 or not isinstance(epoch, (int, float)) or \
            epoch == float('inf'):
        return epoch
    return max(1, round(epoch * ratio))


def scale_schedule(schedulers,
                   epochs: int,
                   new_epochs: int,
                   warmup_epochs: Optional[int] = None) -> List[dict]:
    """A config's parameter schedulers, scaled from ``epochs`` to
    ``new_epochs``.

    Every epoch count of a by-epoch scheduler (``begin``, ``end``,
    ``milestones``, ``T_max``, ``step_size``) is scaled by ``new_epochs /
    epochs`` and rounded; a boundary other than 0 stays at least 1 epoch, and
    ``end == epochs`` becomes ``new_epochs``. Iteration-based schedulers are
    kept as they are. With ``warmup_epochs`` the run gets a linear warm-up
    of that many epochs: the config's own (a ``LinearLR`` that begins at 0),
    lengthened or shortened, the scheduler that began where it ended moved
    along; or, where it has none, ``LinearLR(start_factor=0.01)`` per
    iteration, put first.

    Args:
        schedulers (dict | list[dict]): ``cfg.param_scheduler``.
        epochs (int): The epochs the config was written for.
        new_epochs (int): The epochs of the run.
        warmup_epochs (int, optional): Epochs of linear warm-up; None keeps
            the config's own (scaled).

    Returns:
        list[dict]: The scaled schedulers (copies).
    """
    ratio = new_epochs / epochs
    out = []
    for scheduler in copy.deepcopy([schedulers] if isinstance(
            schedulers, dict) else list(schedulers or [])):
        if scheduler.get('by_epoch', True):
            for key in _EPOCH_KEYS:
                if key in scheduler:
                    scheduler[key] = (
                        new_epochs if scheduler[key] == epochs else _scaled(
                            scheduler[key], ratio))
            if 'milestones' in scheduler:
                scheduler['milestones'] = [
                    _scaled(m, ratio) for m in scheduler['milestones']
                ]
        out.append(scheduler)
    if warmup_epochs is None:
        return out
    own = next((s for s in out
                if s.get('type') == 'LinearLR' and s.get('begin', 0) == 0),
               None)
    if own is None:
        return [
            dict(
                type='LinearLR',
                start_factor=0.01,
                by_epoch=True,
                begin=0,
                end=warmup_epochs,
                convert_to_iter_based=True)
        ] + out
    for scheduler in out:
        if scheduler is not own and scheduler.get('begin') == own.get('end'):
            scheduler['begin'] = warmup_epochs
    own['end'] = warmup_epochs
    return out


def describe_schedule(schedulers) -> str:
    """The schedulers in a line, e.g. ``LinearLR[0, 1) x0.01..1;
    MultiStepLR milestones [12, 16] x0.1``."""
    parts = []
    for s in [schedulers] if isinstance(schedulers, dict) else schedulers:
        span = f"[{s.get('begin', 0)}, {s.get('end', 'end')})"
        if s.get('type') == 'MultiStepLR':
            detail = (f"milestones {list(s['milestones'])} "
                      f"x{s.get('gamma', 0.1):g}")
        elif s.get('type') == 'LinearLR':
            detail = (f"x{s.get('start_factor', 1 / 3):g}.."
                      f"{s.get('end_factor', 1.0):g}")
        else:
            detail = ', '.join(f'{k}={v}' for k, v in s.items()
                               if k not in ('type', 'begin', 'end'))
        parts.append(f"{s.get('type')}{span} {detail}".strip())
    return '; '.join(parts)


def build_cfg(method: str,
              data_root: str,
              work_dir: str,
              epochs: Optional[int] = None,
              batch_size: Optional[int] = None,
              imbalance_factor: Optional[float] = None,
              data_path: str = 'device',
              num_workers: Optional[int] = None,
              amp: bool = False,
              seed: int = 0,
              log_interval: int = 20,
              warmup_epochs: Optional[int] = None):
    """A method's shipped CIFAR-10-LT config on a folder copy of the data.

    What is not given is left as the shipped config has it (the paper's
    recipe: 200 epochs, batch 512 per branch, SGD lr 0.5, x0.1 at epochs
    120/160, alpha parabolic over the epochs, IF 100). Validation during
    training is switched off: the run is evaluated once, on the test set,
    after training (:func:`train_and_test`).

    Args:
        method (str): A key of :data:`METHODS`.
        data_root (str): A folder copy of the data (see :func:`data_format`).
        work_dir (str): The runner's work dir.
        epochs (int, optional): Epochs; the config's own schedule is scaled
            to them (:func:`scale_schedule`: the paper's milestones 120/200
            and 160/200 become 60 % and 80 % of them).
        batch_size (int, optional): Images per branch per step; the lr is
            scaled linearly from the config's (0.5 at
            ``auto_scale_lr.base_batch_size`` 512).
        imbalance_factor (float, optional): IF of the long-tail cut of a
            PNG copy. Not allowed with the WebP copy (already cut).
        data_path (str): ``'device'`` (the shipped configs: the set held in
            memory, augmented batch-wise by the data preprocessor, no
            workers) or ``'per-sample'`` (mmpretrain transforms per sample
            in data workers, ``cifar10lt_per_sample.py``: the two views of
            each uniform image and one of the balanced image for the paper's
            hybrids, the two views of each image for the ``-LA`` hybrids,
            one view of each image for the CE methods).
        num_workers (int, optional): Data workers of the per-sample training
            loader and of the test loader (the device path keeps 0 for
            training). None keeps the config's.
        amp (bool): Mixed precision (fp16 AMP on CUDA, bf16 on the CPU).
        seed (int): The run's seed (``randomness.seed``); the long-tailed
            selection keeps the protocol's seed 0.
        log_interval (int): Iterations between log lines.
        warmup_epochs (int, optional): A linear warm-up of that many epochs
            (:func:`scale_schedule`); None keeps the config's own.

    Returns:
        Config: The run's config, with ``ClassCountsHook`` as
        ``tools/train.py`` adds it (the training set's class counts for
        ``LongTailAccuracy`` and for ``LogitAdjustedLoss``).
    """
    from mmengine.config import Config

    from mmlt_hybrid.utils import add_data_hooks, enable_amp

    if method not in METHODS:
        raise ValueError(f'method={method!r} is unknown; allowed: '
                         f'{", ".join(METHODS)}')
    if data_path not in DATA_PATHS:
        raise ValueError(f'--data-path {data_path!r} is unknown; allowed: '
                         f'{", ".join(DATA_PATHS)}')
    if data_path == 'per-sample' and method in OWN_VIEW_METHODS:
        raise ValueError(
            f'--data-path per-sample: {method} reads a classifier view of '
            'its own, which only the device path makes; use --data-path '
            'device for it')
    fmt = data_format(data_root)
    if fmt == 'webp' and imbalance_factor is not None:
        raise ValueError(
            f'--imbalance-factor {imbalance_factor:g}: {data_root!r} holds '
            'the WebP copy, which is already long-tailed and read as it is '
            "(profile='none'); leave --imbalance-factor out, or give a "
            'balanced PNG copy of CIFAR-10 as --data-root')

    cfg = Config.fromfile(osp.join(REPO, METHODS[method]))
    folder = Config.fromfile(osp.join(REPO, FOLDER_DATA))
    data_root = osp.abspath(data_root)
    extensions = dict(extensions=('.webp', )) if fmt == 'webp' else {}

    # Training set: the long-tailed set, read from the image folders.
    train_loader = cfg.train_dataloader
    lt = train_loader.dataset.dataset
    lt.dataset = copy.deepcopy(folder.train_dataloader.dataset.dataset.dataset)
    lt.dataset.update(data_root=data_root, **extensions)
    if fmt == 'webp':
        lt.profile = 'none'
    elif imbalance_factor is not None:
        lt.imbalance_factor = imbalance_factor
    # Test set: the balanced test folder; evaluated once, after training.
    test_loader = copy.deepcopy(folder.test_dataloader)
    test_loader.dataset.update(data_root=data_root, **extensions)
    if num_workers is not None:
        test_loader.num_workers = num_workers
    cfg.test_dataloader = test_loader
    cfg.test_evaluator = copy.deepcopy(cfg.val_evaluator)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None

    if data_path == 'per-sample':
        per_sample = Config.fromfile(osp.join(REPO, PER_SAMPLE_DATA))
        pair = per_sample.train_dataloader.dataset
        uniform_views = cfg.model.get('cls_input') == 'uniform'
        if train_loader.sampler.type == 'ClassBalancedPairSampler':
            # The paper's hybrids: two views of the uniform image, one of
            # the balanced image.
            train_loader.dataset.update(
                pipeline=copy.deepcopy(pair.pipeline),
                balanced_pipeline=copy.deepcopy(pair.balanced_pipeline),
                hold_in_memory=False)
        else:
            # Single samples: the two views of each image for a hybrid whose
            # classifier reads them (the preprocessor keeps num_views, which
            # its view_single_images needs, but leaves a batch that has its
            # views as it is), one view each for the CE methods.
            views = pair.pipeline if uniform_views else \
                pair.balanced_pipeline
            train_loader.dataset.update(
                pipeline=copy.deepcopy(views), hold_in_memory=False)
        if not uniform_views:
            cfg.data_preprocessor.num_views = \
                per_sample.data_preprocessor.num_views
        cfg.data_preprocessor.batch_transforms = copy.deepcopy(
            per_sample.data_preprocessor.batch_transforms)
        if num_workers is not None:
            train_loader.num_workers = num_workers
        train_loader.persistent_workers = train_loader.num_workers > 0

    # Schedule: the config's own, scaled to the budget when overridden.
    config_epochs = cfg.train_cfg.max_epochs
    max_epochs = config_epochs if epochs is None else epochs
    cfg.train_cfg = dict(by_epoch=True, max_epochs=max_epochs)
    if epochs is not None or warmup_epochs is not None:
        cfg.param_scheduler = scale_schedule(cfg.param_scheduler,
                                             config_epochs, max_epochs,
                                             warmup_epochs)
    if batch_size is not None:
        base = cfg.get('auto_scale_lr', {}).get('base_batch_size',
                                                train_loader.batch_size)
        cfg.optim_wrapper.optimizer.lr = (
            cfg.optim_wrapper.optimizer.lr * batch_size / base)
        train_loader.batch_size = batch_size
    if amp:
        enable_amp(cfg)
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=min(10, max_epochs), max_keep_ckpts=1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=log_interval)
    cfg.randomness = dict(seed=seed, deterministic=False)
    cfg.work_dir = work_dir
    add_data_hooks(cfg)
    return cfg


def build_run_cfg(name: str, args: argparse.Namespace, **kwargs):
    """:func:`build_cfg` of one run of a benchmark script: its data root,
    epochs, batch size, amp, seed and warm-up (``warmup_epochs``, where the
    script has it) from the command line ``args``, the work dir
    ``args.work_dir/name``, and ``name`` as the experiment name (the runner
    appends a timestamp). ``kwargs`` go to :func:`build_cfg`."""
    cfg = build_cfg(
        name,
        data_root=args.data_root,
        work_dir=osp.join(args.work_dir, name),
        epochs=args.epochs,
        batch_size=args.batch_size,
        amp=args.amp,
        seed=args.seed,
        warmup_epochs=getattr(args, 'warmup_epochs', None),
        **kwargs)
    cfg.experiment_name = name
    return cfg


def describe_cfg(cfg) -> Dict[str, object]:
    """The settings of a built config that a results row records."""
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    amp = {
        'AmpOptimWrapper': 'fp16',
        'CpuAmpOptimWrapper': 'bf16'
    }.get(wrapper, 'fp32')
    if amp != 'fp32' and cfg.optim_wrapper.get('dtype'):
        amp = {
            'float16': 'fp16',
            'bfloat16': 'bf16'
        }.get(cfg.optim_wrapper.dtype, cfg.optim_wrapper.dtype)
    schedulers = cfg.param_scheduler
    schedulers = [schedulers] if isinstance(schedulers, dict) else schedulers
    milestones = next(
        (list(s['milestones']) for s in schedulers if 'milestones' in s), None)
    return dict(
        epochs=cfg.train_cfg.max_epochs,
        batch_size=cfg.train_dataloader.batch_size,
        lr=cfg.optim_wrapper.optimizer.lr,
        milestones=milestones,
        schedule=describe_schedule(schedulers),
        precision=amp,
        train_workers=cfg.train_dataloader.num_workers,
        seed=cfg.randomness.seed)


def code_commit() -> str:
    """The commit of the code that runs (``+changes`` where files tracked
    by git differ from it), or ``'unknown'`` outside a git checkout."""

    def git(*args):
        return subprocess.run(['git', '-C', REPO, *args],
                              capture_output=True,
                              text=True,
                              check=True)

    try:
        commit = git('rev-parse', 'HEAD').stdout.strip()
        dirty = git('status', '--porcelain', '--untracked-files=no').stdout
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'
    return commit + (' +changes' if dirty.strip() else '')


def load_segments(row_dir: str) -> List[Dict[str, object]]:
    """The segments recorded in ``<row_dir>/segments.json`` (none when it
    does not exist)."""
    path = osp.join(row_dir, 'segments.json')
    if not osp.exists(path):
        return []
    with open(path) as f:
        return json.load(f)['segments']


def save_segments(row_dir: str, segments: List[Dict[str, object]]) -> None:
    """Write ``<row_dir>/segments.json`` atomically."""
    path = osp.join(row_dir, 'segments.json')
    with open(path + '.tmp', 'w') as f:
        json.dump(dict(segments=segments), f, indent=2)
    os.replace(path + '.tmp', path)


def segment_hook(row_dir: str, segments: List[Dict[str, object]],
                 segment: Dict[str, object], meter):
    """A hook that records this invocation's ``segment`` of the run in
    ``<row_dir>/segments.json``: the epoch it starts from before training,
    then after every epoch the epochs reached, the training time and images
    (from the ``meter`` hook), and every test evaluation."""
    from mmengine.hooks import Hook

    class SegmentHook(Hook):
        # after the meter (VERY_HIGH) has timed the epoch, before the
        # checkpoint (VERY_LOW) is written
        priority = 'LOW'

        def _save(self, runner, epochs: int) -> None:
            segment.update(
                end_epoch=epochs,
                train_s=meter.train_s,
                iters=meter.iters,
                images=meter.images,
                updated=f'{datetime.now():%Y-%m-%d %H:%M:%S}')
            save_segments(row_dir, segments)

        def before_train(self, runner) -> None:
            segment['start_epoch'] = runner.epoch
            segments.append(segment)
            self._save(runner, runner.epoch)

        def after_train_epoch(self, runner) -> None:
            self._save(runner, runner.epoch + 1)

        def after_val_epoch(self, runner, metrics=None) -> None:
            if metrics:
                segment.setdefault('val', []).append(
                    dict(epoch=runner.epoch, **metrics))
                self._save(runner, runner.epoch)

    return SegmentHook()


def new_segment(cfg, **extra) -> Dict[str, object]:
    """The record of one invocation of a run (a segment), before it
    trains: the code's commit, the device, the precision and memory format
    of ``cfg``, the start time and ``extra``."""
    return dict(
        commit=code_commit(),
        device=device_name(),
        precision=describe_cfg(cfg)['precision'],
        memory_format=('channels_last'
                       if cfg.data_preprocessor.get('channels_last') else
                       'contiguous'),
        started=f'{datetime.now():%Y-%m-%d %H:%M:%S}',
        **extra)


def prepare_resume(cfg,
                   row_dir: str,
                   resume: bool,
                   segment: Dict[str, object],
                   kept: Sequence[str] = KEPT) -> List[Dict[str, object]]:
    """Point ``cfg`` at the run's latest checkpoint in ``row_dir`` where
    ``resume`` asks for it; returns the segments recorded so far.

    Args:
        cfg (Config): The run's config; ``load_from`` and ``resume`` are set.
        row_dir (str): The run's work dir.
        resume (bool): Continue the run found there (``--resume``).
        segment (dict): This invocation's segment (:func:`new_segment`).
        kept (Sequence[str]): The keys of ``segment`` a run keeps from its
            first segment.

    Raises:
        SystemExit: If the work dir has a run and ``resume`` is False, or
            the run's first segment had another value of a ``kept`` key.
    """
    from mmlt_hybrid.utils import find_resume_checkpoint

    segments = load_segments(row_dir)
    checkpoint, note = find_resume_checkpoint(row_dir)
    if not resume:
        if segments or checkpoint:
            raise SystemExit(
                f'{row_dir} holds a run of this row (to epoch '
                f'{segments[-1]["end_epoch"] if segments else "?"}); pass '
                '--resume to continue it, or give another --work-dir')
        return segments
    print(note, flush=True)
    for key in kept:
        if segments and segments[0][key] != segment[key]:
            raise SystemExit(
                f'--resume: the run in {row_dir} trained with {key} '
                f'{segments[0][key]!r}, this invocation would use '
                f'{segment[key]!r}; a run keeps one {key} (the command '
                'line and the config decide it), so resume with the '
                'settings it started with or give another --work-dir')
    cfg.load_from, cfg.resume = checkpoint, checkpoint is not None
    return segments


def train_segment(cfg,
                  run_dir: str,
                  resume: bool,
                  segment: Dict[str, object],
                  banner: str,
                  kept: Sequence[str] = KEPT):
    """Train (or resume) the run of ``cfg`` in ``run_dir`` as one more
    segment, then test it.

    Args:
        cfg (Config): The run's config (:func:`build_cfg`).
        run_dir (str): The run's work dir (``cfg.work_dir``).
        resume (bool): Continue the run found there (:func:`prepare_resume`).
        segment (dict): This invocation's segment (:func:`new_segment`).
        banner (str): What the printed line says of the run.
        kept (Sequence[str]): What a resumed run keeps from its first
            segment.

    Returns:
        tuple[dict, list[dict]]: :func:`train_and_test`'s result (its
        ``setup_s`` is this invocation's) with the costs of the whole run
        (:func:`run_totals`), and every segment of the run (this one
        last).

    Raises:
        SystemExit: As :func:`prepare_resume`.
    """
    os.makedirs(run_dir, exist_ok=True)
    segments = prepare_resume(cfg, run_dir, resume, segment, kept)
    print(
        f'=== {banner}; segment {len(segments) + 1} on {segment["device"]}, '
        f'code {segment["commit"]}',
        flush=True)
    result = train_and_test(
        cfg,
        hooks=lambda meter: [segment_hook(run_dir, segments, segment, meter)])
    result.update(run_totals(segments))
    return result, segments


def run_totals(segments: Sequence[dict]) -> Dict[str, object]:
    """What a run cost over all its segments (every invocation).

    Args:
        segments (Sequence[dict]): The run's segments (:func:`new_segment`,
            filled in by :func:`segment_hook`).

    Returns:
        dict: ``train_s``, ``iters`` and ``images`` summed, ``images_per_s``
        of the sums, ``resumes`` (segments after the first) and ``commit``
        (the segments' commits, sorted, joined by `` / ``).
    """
    train_s = sum(seg['train_s'] for seg in segments)
    images = sum(seg['images'] for seg in segments)
    return dict(
        train_s=train_s,
        iters=sum(seg['iters'] for seg in segments),
        images=images,
        images_per_s=images / train_s if train_s else 0.,
        resumes=len(segments) - 1,
        commit=' / '.join(sorted({seg['commit']
                                  for seg in segments})))


def train_meter():
    """A hook that counts the images every training step processes and
    times the training epochs.

    A step of ``N`` samples processes ``V`` views of each uniform image,
    plus the class-balanced image for the paper's hybrids: ``3N`` for the
    paper's hybrids and ``2N`` for the ``-LA`` hybrids (``V = 2``), ``N``
    for the CE methods (``V = 1``). ``V`` is the number of views the batch
    brings (a per-sample ``MultiView`` pipeline) or, where the data
    preprocessor makes them (``num_views`` for the uniform images of a pair
    batch, and for single images with ``view_single_images``), what it
    makes. The time is that of the training
    epochs (data loading and steps, the accelerator synchronised at the
    start and the end of each epoch), without building the dataset, saving
    checkpoints or testing.
    """
    import torch
    from mmengine.hooks import Hook

    def sync() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    class TrainMeterHook(Hook):
        priority = 'VERY_HIGH'

        def __init__(self) -> None:
            self.images = self.iters = 0
            self.train_s = 0.0
            self.train_start: Optional[float] = None
            self._epoch_start = 0.0

        def before_train(self, runner) -> None:
            self.train_start = time.perf_counter()

        def before_train_epoch(self, runner) -> None:
            sync()
            self._epoch_start = time.perf_counter()

        def after_train_epoch(self, runner) -> None:
            sync()
            self.train_s += time.perf_counter() - self._epoch_start

        def after_train_iter(self,
                             runner,
                             batch_idx,
                             data_batch=None,
                             outputs=None) -> None:
            self.iters += 1
            inputs = data_batch['inputs']
            samples = data_batch.get('data_samples')
            model = getattr(runner.model, 'module', runner.model)
            made = getattr(model.data_preprocessor, 'num_views', None)
            if isinstance(inputs, dict):  # a pair batch: views + balanced
                n = len(samples['uniform'])
                self.images += n * (made or len(inputs['views'])) + len(
                    samples['balanced'])
                return
            n = len(samples) if samples is not None else len(inputs)
            # mmpretrain's multi-view layout: V lists of N images
            # (pseudo_collate) or V (N, C, H, W) tensors (default_collate)
            multi_view = isinstance(
                inputs, (list, tuple)) and len(inputs) > 0 and (isinstance(
                    inputs[0],
                    (list, tuple)) or getattr(inputs[0], 'ndim', 0) == 4)
            if multi_view:
                views = len(inputs)
            elif getattr(model.data_preprocessor, 'view_single_images', False):
                # and the classifier's own view (cls_input='own_view')
                views = made + bool(
                    getattr(model.data_preprocessor, 'classifier_view', False))
            else:
                views = 1
            self.images += n * views

    return TrainMeterHook()


def train_and_test(cfg, hooks=None) -> Dict[str, object]:
    """Train a config, then test it once.

    Args:
        cfg (Config): The run's config (:func:`build_cfg`).
        hooks (callable, optional): Given the :func:`train_meter` hook,
            returns more hooks to register (each with its ``priority``).

    Returns:
        dict: The test metrics (``long_tail/top1``, ...), ``setup_s``
        (building the training set, e.g. decoding it into memory, and the
        optimiser) and ``class_counts`` of the training set. The training's
        time, steps and images are the meter's, recorded per segment by
        :func:`segment_hook` and added up by :func:`run_totals`.
    """
    from mmengine.runner import Runner

    import mmlt_hybrid  # noqa: F401  (registers the components)
    from mmlt_hybrid.utils import make_checkpoints_atomic

    meter = train_meter()
    runner = Runner.from_cfg(cfg)
    for hook in [meter] + list(hooks(meter) if hooks else []):
        runner.register_hook(hook, priority=hook.priority)
    make_checkpoints_atomic(runner)
    start = time.perf_counter()
    runner.train()
    counts = getattr(runner.train_dataloader.dataset, 'class_counts', None)
    metrics = runner.test()
    return dict(
        metrics,
        setup_s=(meter.train_start or start) - start,
        class_counts=list(counts) if counts is not None else None)


def metric(results: Dict[str, object], key: str) -> Optional[float]:
    """A test metric by its short name (``top1``, ``many``...), or None
    when it is missing (e.g. a shot group without classes)."""
    for name, value in results.items():
        if name == key or name.endswith('/' + key):
            return value
    return None


def fmt(value, spec: str = '.2f') -> str:
    """A table cell: ``-`` for a missing value."""
    return '-' if value is None else format(value, spec)


def markdown_table(header: Sequence[str], rows: List[Sequence[str]]) -> str:
    """A markdown table."""
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return '\n'.join(lines)


def device_name() -> str:
    """The accelerator's name, or the CPU's model, its speed flags, its
    cores and the threads torch uses."""
    import torch

    from mmlt_hybrid.utils.cpu_info import read_cpuinfo, speed_flags
    if torch.cuda.is_available():
        return (f'{torch.cuda.get_device_name(0)} (CUDA '
                f'{torch.version.cuda}, {torch.cuda.device_count()} visible)')
    cpu = read_cpuinfo()
    return (f'CPU {cpu["model"]} ({" ".join(speed_flags(cpu["flags"]))}), '
            f'{os.cpu_count()} cores, {torch.get_num_threads()} threads')


def environment() -> str:
    """The device and the versions of the main packages, for a header."""
    import mmengine
    import mmpretrain
    import torch
    return (f'{device_name()}; torch {torch.__version__}, mmengine '
            f'{mmengine.__version__}, mmpretrain {mmpretrain.__version__}')
