"""Multi-process training on machines without CUDA (gloo backend).

mmengine 0.10.7's ``init_dist`` calls ``torch.cuda.set_device`` for the
``pytorch``/``slurm``/``mpi`` launchers, which raises on a machine without an
NVIDIA driver, and its default DDP wrapper passes ``device_ids=[LOCAL_RANK]``,
which DDP rejects for a CPU module. The functions here initialise the process
group before the Runner is built (the Runner then skips its own
initialisation) and configure a CPU-compatible DDP wrapper.
"""
import datetime
import os
import subprocess
from typing import Dict, Mapping, Optional

import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.logging import print_log

_LAUNCHERS = ('pytorch', 'slurm', 'mpi')


def _require_env(environ: Mapping[str, str], key: str, launcher: str) -> str:
    if key not in environ:
        raise RuntimeError(
            f'launcher={launcher!r} needs the environment variable {key}, '
            'which is not set. Start the processes with the matching launcher '
            '(torchrun / tools/dist_train.sh, srun, mpirun).')
    return environ[key]


def distributed_env_from_launcher(
        launcher: str,
        environ: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """Work out rank, world size and rendezvous address for a launcher.

    Args:
        launcher (str): ``'pytorch'`` (torchrun sets RANK, WORLD_SIZE,
            LOCAL_RANK, MASTER_ADDR, MASTER_PORT), ``'slurm'`` (SLURM_PROCID,
            SLURM_NTASKS, SLURM_LOCALID, SLURM_NODELIST; the master address is
            MASTER_ADDR or the first host of the node list) or ``'mpi'``
            (OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE,
            OMPI_COMM_WORLD_LOCAL_RANK; MASTER_ADDR must be set).
        environ (Mapping[str, str], optional): The environment to read.
            Defaults to ``os.environ``.

    Returns:
        dict: The variables RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
        MASTER_PORT (strings) that ``init_method='env://'`` reads.

    Raises:
        ValueError: If the launcher is unknown.
        RuntimeError: If a variable the launcher must set is missing.
    """
    env = os.environ if environ is None else environ
    if launcher == 'pytorch':
        keys = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR',
                'MASTER_PORT')
        return {key: _require_env(env, key, launcher) for key in keys}
    if launcher == 'slurm':
        result = dict(
            RANK=_require_env(env, 'SLURM_PROCID', launcher),
            WORLD_SIZE=_require_env(env, 'SLURM_NTASKS', launcher),
            LOCAL_RANK=env.get('SLURM_LOCALID', '0'),
            MASTER_PORT=env.get('MASTER_PORT', '29500'))
        if 'MASTER_ADDR' in env:
            result['MASTER_ADDR'] = env['MASTER_ADDR']
        else:
            node_list = _require_env(env, 'SLURM_NODELIST', launcher)
            hosts = subprocess.check_output(
                ['scontrol', 'show', 'hostnames', node_list], text=True)
            result['MASTER_ADDR'] = hosts.split()[0]
        return result
    if launcher == 'mpi':
        return dict(
            RANK=_require_env(env, 'OMPI_COMM_WORLD_RANK', launcher),
            WORLD_SIZE=_require_env(env, 'OMPI_COMM_WORLD_SIZE', launcher),
            LOCAL_RANK=_require_env(env, 'OMPI_COMM_WORLD_LOCAL_RANK',
                                    launcher),
            MASTER_ADDR=_require_env(env, 'MASTER_ADDR', launcher),
            MASTER_PORT=env.get('MASTER_PORT', '29500'))
    raise ValueError(f'launcher must be one of {_LAUNCHERS} for distributed '
                     f'runs, got {launcher!r}')


def init_dist_without_cuda(cfg: Config, launcher: str) -> None:
    """Initialise the default process group with gloo for a CPU-only run.

    Sets ``cfg.env_cfg.dist_cfg.backend`` to ``'gloo'`` when it names a
    GPU-only backend (nccl and the like), exports the variables of
    :func:`distributed_env_from_launcher` and calls
    ``torch.distributed.init_process_group``. Because the group then exists,
    mmengine's Runner does not call its CUDA-bound ``init_dist``. Does
    nothing when the group is already initialised.

    Args:
        cfg (Config): The run's config; ``env_cfg.dist_cfg`` gives the backend
            and an optional ``timeout`` in seconds.
        launcher (str): ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
    """
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    backend = dist_cfg.get('backend', 'nccl')
    if backend not in ('gloo', 'mpi'):
        print_log(
            f'No CUDA device: using the gloo backend instead of '
            f'env_cfg.dist_cfg.backend={backend!r}.',
            logger='current')
        dist_cfg['backend'] = 'gloo'
    if torch_dist.is_initialized():
        return
    os.environ.update(distributed_env_from_launcher(launcher))
    kwargs = dict(backend=dist_cfg['backend'], init_method='env://')
    if dist_cfg.get('timeout') is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=dist_cfg['timeout'])
    torch_dist.init_process_group(**kwargs)


def use_cpu_model_wrapper(cfg: Config) -> None:
    """Make the DDP model wrapper accept a CPU module.

    mmengine builds ``MMDistributedDataParallel(device_ids=[LOCAL_RANK])`` when
    the config has no ``model_wrapper_cfg``; DDP requires ``device_ids=None``
    for a module on the CPU. This sets (or completes) ``model_wrapper_cfg``
    with ``device_ids=None`` for any DistributedDataParallel subclass, keeping
    mmengine's defaults (``broadcast_buffers=False`` and the config's
    ``find_unused_parameters``).

    Args:
        cfg (Config): The run's config, changed in place.
    """
    from mmpretrain.registry import MODEL_WRAPPERS
    from torch.nn.parallel import DistributedDataParallel

    wrapper_cfg = cfg.get('model_wrapper_cfg')
    if wrapper_cfg is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        return
    wrapper_type = wrapper_cfg.get('type', 'MMDistributedDataParallel')
    if isinstance(wrapper_type, str):
        wrapper_type = MODEL_WRAPPERS.get(wrapper_type)
    if isinstance(wrapper_type, type) and issubclass(wrapper_type,
                                                     DistributedDataParallel):
        wrapper_cfg['device_ids'] = None


def shutdown_dist() -> None:
    """Wait for all ranks, then destroy the default process group.

    Left to interpreter exit, the gloo process group's threads are torn down
    in an arbitrary order, which sometimes aborts a rank with "terminate
    called without an active exception" after the work is done. Does nothing
    when no process group exists.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()
