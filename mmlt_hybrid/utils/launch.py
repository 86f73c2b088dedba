"""Command-line and runner plumbing shared by tools/train.py and test.py."""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.device import get_device
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .config_overrides import make_optim_wrapper_cpu_compatible
from .cpu_dist import init_dist_without_cuda, use_cpu_model_wrapper


def tool_parser(description: str,
                work_dir_use: str) -> argparse.ArgumentParser:
    """A tool's parser with its first argument ``config`` and ``--work-dir``.

    Args:
        description (str): What the tool does, e.g. ``'Train a model'``.
        work_dir_use (str): What the work dir holds for this tool.

    Returns:
        ArgumentParser: The parser, for the tool's own arguments.
    """
    parser = argparse.ArgumentParser(
        description=f'{description} with an mmpretrain config (mmlt_hybrid '
        'components registered).')
    parser.add_argument('config', help='path of the config file')
    parser.add_argument(
        '--work-dir',
        help=f'folder for {work_dir_use} (default: the config\'s work_dir, '
        'else ./work_dirs/<config name>)')
    return parser


def add_common_args(parser: argparse.ArgumentParser, dist_script: str) -> None:
    """Add ``--cfg-options``, ``--launcher`` and ``--local_rank``.

    Args:
        parser (ArgumentParser): The tool's parser.
        dist_script (str): The script that starts the tool with
            ``--launcher pytorch`` (named in the help).
    """
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, key=value pairs; a list is written '
        'key="[a,b]" or key=a,b')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help=f'how the processes were started ({dist_script} uses pytorch)')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_common(parser: argparse.ArgumentParser,
                 argv=None) -> argparse.Namespace:
    """Parse, and export ``LOCAL_RANK`` as the launchers expect.

    Args:
        parser (ArgumentParser): A parser with :func:`add_common_args`.
        argv (list[str], optional): Arguments; defaults to ``sys.argv[1:]``.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def set_launcher_and_work_dir(cfg: Config, args: argparse.Namespace) -> None:
    """``cfg.launcher`` and ``cfg.work_dir`` from the command line.

    The work dir is ``--work-dir``, else the config's, else
    ``./work_dirs/<config name>``, as in mmpretrain.

    Args:
        cfg (Config): The config, changed in place.
        args (argparse.Namespace): With ``launcher``, ``work_dir`` and
            ``config``.
    """
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])


def build_runner(cfg: Config, launcher: str) -> Runner:
    """Build the runner; on a machine without CUDA prepare it to run there.

    On the CPU, a config's AMP wrapper becomes :class:`CpuAmpOptimWrapper`
    and, under a launcher, the gloo process group is started here (mmengine's
    own start calls ``torch.cuda.set_device``) and DDP gets no device ids.

    Args:
        cfg (Config): The merged config.
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.

    Returns:
        Runner: The runner (``cfg.runner_type`` if the config names one).
    """
    if get_device() == 'cpu':
        make_optim_wrapper_cpu_compatible(cfg)
        if launcher != 'none':
            init_dist_without_cuda(cfg, launcher)
            use_cpu_model_wrapper(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
