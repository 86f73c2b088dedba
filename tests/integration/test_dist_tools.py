"""tools/dist_train.sh and tools/dist_test.sh with 2 CPU processes (gloo).

Also the pieces they rely on: the launcher environment, the CPU DDP
wrapper config and the CPU backend choice.
"""
import json
import sys

import pytest
from mmengine.config import Config
from tool_runner import (
    TINY_CONFIG,
    TOOLS,
    free_port,
    python_tool,
    run,
    scalars,
    tiny_cfg_options,
)

from mmlt_hybrid.utils import (
    distributed_env_from_launcher,
    use_cpu_model_wrapper,
)


def _dist_env():
    return dict(PYTHON=sys.executable, PORT=str(free_port()))


def test_dist_train_and_test_match_single_process(tiny_folder, tmp_path):
    """2-process training saves a checkpoint; 2-process and 1-process
    evaluation of it agree.

    Two processes really ran: each rank's DefaultSampler takes half of the
    240 training images, so an epoch has ceil(120 / 16) = 8 iterations
    instead of 15, and the log reports world size 2. The test set has 40
    images (divisible by 2, so no sample is padded in); mmengine's
    collect_results gathers both halves back in order before the metric.
    """
    options = tiny_cfg_options(tiny_folder)
    work_dir = tmp_path / 'dist_train'
    train = run([
        'bash', TOOLS / 'dist_train.sh', TINY_CONFIG, 2, '--work-dir',
        work_dir, '--cfg-options', *options, 'train_cfg.max_epochs=1'
    ],
                env=_dist_env())
    checkpoint = work_dir / 'epoch_1.pth'
    assert checkpoint.is_file()
    log = train.stdout + train.stderr
    assert 'Distributed training: True' in log
    assert "No CUDA device: using the gloo backend instead of " \
           "env_cfg.dist_cfg.backend='nccl'" in log
    iters = [r['iter'] for r in scalars(work_dir) if 'loss' in r]
    assert iters == list(range(1, 9))

    dist_metrics = tmp_path / 'dist_metrics.json'
    run([
        'bash', TOOLS / 'dist_test.sh', TINY_CONFIG, checkpoint, 2,
        '--work-dir', tmp_path / 'dist_test', '--out', dist_metrics,
        '--out-item', 'metrics', '--cfg-options', *options
    ],
        env=_dist_env())
    single_metrics = tmp_path / 'single_metrics.json'
    run(
        python_tool('test.py', TINY_CONFIG, checkpoint, '--work-dir',
                    tmp_path / 'single_test', '--out', single_metrics,
                    '--out-item', 'metrics', '--cfg-options', *options))
    with open(dist_metrics) as f:
        dist_result = json.load(f)
    with open(single_metrics) as f:
        single_result = json.load(f)
    assert set(dist_result) == {'accuracy/top1'}
    assert dist_result == single_result


def test_dist_scripts_need_their_arguments():
    """Too few arguments: a usage message and exit status 2."""
    for script, args in (('dist_train.sh', ['cfg.py']),
                         ('dist_test.sh', ['cfg.py', 'ckpt.pth'])):
        result = run(['bash', TOOLS / script, *args], check=False)
        assert result.returncode == 2
        assert 'usage:' in result.stderr


# Settings that torchrun takes without complaint but that can never start
# (a node rank outside 0 .. NNODES-1 waits for its rendezvous forever, as
# does a second node looking for node 0 at the default 127.0.0.1), or that
# end in a bare AssertionError (GPUS=0). Each stops at once with exit 2 and
# a message naming the variable.
BAD_LAUNCH_SETTINGS = [
    (dict(NNODES='2', NODE_RANK='2',
          MASTER_ADDR='127.0.0.1'), '1', 'NODE_RANK=2 is not in 0 .. 1'),
    (dict(NNODES='2', NODE_RANK='-1',
          MASTER_ADDR='127.0.0.1'), '1', 'NODE_RANK=-1 is not in 0 .. 1'),
    (dict(NNODES='2', NODE_RANK='1'), '1', 'NNODES=2 needs MASTER_ADDR'),
    (dict(NNODES='0'), '1', 'NNODES=0'),
    (dict(), '0', 'GPUS=0'),
]


@pytest.mark.parametrize('env,gpus,message', BAD_LAUNCH_SETTINGS)
def test_dist_train_refuses_launch_settings_that_cannot_start(
        env, gpus, message, tmp_path):
    result = run([
        'bash', TOOLS / 'dist_train.sh', TINY_CONFIG, gpus, '--work-dir',
        tmp_path
    ],
                 env={
                     **_dist_env(),
                     **env
                 },
                 check=False,
                 timeout=30)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert not list(tmp_path.iterdir())


def test_launcher_environment():
    """RANK/WORLD_SIZE/LOCAL_RANK/MASTER_* from each launcher's variables."""
    torchrun = dict(
        RANK='3',
        WORLD_SIZE='4',
        LOCAL_RANK='1',
        MASTER_ADDR='10.0.0.1',
        MASTER_PORT='1234',
        OTHER='x')
    assert distributed_env_from_launcher('pytorch', torchrun) == dict(
        RANK='3',
        WORLD_SIZE='4',
        LOCAL_RANK='1',
        MASTER_ADDR='10.0.0.1',
        MASTER_PORT='1234')
    slurm = dict(
        SLURM_PROCID='5',
        SLURM_NTASKS='8',
        SLURM_LOCALID='1',
        MASTER_ADDR='node7')
    assert distributed_env_from_launcher('slurm', slurm) == dict(
        RANK='5',
        WORLD_SIZE='8',
        LOCAL_RANK='1',
        MASTER_ADDR='node7',
        MASTER_PORT='29500')
    mpi = dict(
        OMPI_COMM_WORLD_RANK='2',
        OMPI_COMM_WORLD_SIZE='4',
        OMPI_COMM_WORLD_LOCAL_RANK='0',
        MASTER_ADDR='h0',
        MASTER_PORT='2222')
    assert distributed_env_from_launcher('mpi', mpi) == dict(
        RANK='2',
        WORLD_SIZE='4',
        LOCAL_RANK='0',
        MASTER_ADDR='h0',
        MASTER_PORT='2222')
    with pytest.raises(RuntimeError, match='OMPI_COMM_WORLD_SIZE'):
        distributed_env_from_launcher('mpi', {'OMPI_COMM_WORLD_RANK': '0'})
    with pytest.raises(RuntimeError, match='WORLD_SIZE'):
        distributed_env_from_launcher('pytorch', {'RANK': '0'})
    with pytest.raises(ValueError, match="'none'"):
        distributed_env_from_launcher('none', {})


def test_cpu_model_wrapper_config():
    """DDP of a CPU module gets device_ids=None, other settings kept."""
    cfg = Config(dict(find_unused_parameters=True))
    use_cpu_model_wrapper(cfg)
    assert cfg.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel',
        device_ids=None,
        broadcast_buffers=False,
        find_unused_parameters=True)

    cfg = Config(
        dict(
            model_wrapper_cfg=dict(
                type='MMDistributedDataParallel',
                device_ids=[0],
                find_unused_parameters=True)))
    use_cpu_model_wrapper(cfg)
    assert cfg.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel',
        device_ids=None,
        find_unused_parameters=True)

    # A wrapper that is not a DistributedDataParallel is left alone.
    cfg = Config(
        dict(
            model_wrapper_cfg=dict(
                type='MMFullyShardedDataParallel', cpu_offload=True)))
    use_cpu_model_wrapper(cfg)
    assert cfg.model_wrapper_cfg == dict(
        type='MMFullyShardedDataParallel', cpu_offload=True)
