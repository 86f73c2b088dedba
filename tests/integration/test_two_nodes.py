"""The multi-node path of tools/dist_train.sh, two nodes simulated on this
machine: two invocations (NNODES=2, NODE_RANK 0 and 1, one CPU process each,
gloo) train one epoch of the quick start to the same weights and logged
losses as one invocation with two processes."""
import os
import signal
import subprocess
import sys

import torch
from tool_runner import REPO_ROOT, TOOLS, free_port, scalars

import mmlt_hybrid  # noqa: F401  (safe globals for the checkpoint)

CONFIG = REPO_ROOT / 'configs' / 'quickstart_hybrid_sc_r20_synthetic.py'
TIMEOUT_S = 240
# The quick start on a few dozen images: 12 images in the largest class,
# batch 4 a process, one epoch without validation; alpha per iteration, so
# that the classifier branch gets a weight within the one epoch.
OPTIONS = [
    'train_dataloader.batch_size=4',
    'train_dataloader.dataset.dataset.dataset.images_per_class=12',
    'train_cfg.max_epochs=1',
    'custom_hooks.0.by_epoch=False',
    'default_hooks.logger.interval=1',
    'log_processor.window_size=1',
    # Workers that lose their partner give up instead of waiting 30 min.
    'env_cfg.dist_cfg.timeout=120',
]


def launch(work_dir, gpus, **env):
    """Start tools/dist_train.sh in the background."""
    full_env = dict(
        os.environ,
        PYTHON=sys.executable,
        OMP_NUM_THREADS='1',
        MKL_NUM_THREADS='1',
        PYTHONWARNINGS='ignore',
        **env)
    return subprocess.Popen([
        'bash',
        str(TOOLS / 'dist_train.sh'),
        str(CONFIG),
        str(gpus), '--work-dir',
        str(work_dir), '--no-validate', '--cfg-options', *OPTIONS
    ],
                            cwd=REPO_ROOT,
                            env=full_env,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            text=True)


def wait_all(processes):
    """Wait for every launch; stop them all if one fails or hangs.

    torchrun (the launched process: bash execs it) stops its workers on
    SIGTERM.
    """
    outputs = {}
    try:
        for name, process in processes.items():
            outputs[name], _ = process.communicate(timeout=TIMEOUT_S)
            assert process.returncode == 0, (
                f'{name} exited with {process.returncode}:\n'
                f'{outputs[name][-6000:]}')
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.communicate()
    return outputs


def state_dict(work_dir):
    return torch.load(
        work_dir / 'epoch_1.pth', map_location='cpu',
        weights_only=True)['state_dict']


def test_two_nodes_train_like_one_node_with_two_processes(tmp_path):
    one_port = free_port()
    two_port = free_port()
    while two_port == one_port:
        two_port = free_port()
    # Each node has its own work dir, as on machines without a shared disk.
    two_nodes = dict(NNODES='2', MASTER_ADDR='127.0.0.1', PORT=str(two_port))
    processes = {
        'one node, 2 processes':
        launch(tmp_path / 'one_node', 2, PORT=str(one_port)),
        'node 0':
        launch(tmp_path / 'node0', 1, NODE_RANK='0', **two_nodes),
        'node 1':
        launch(tmp_path / 'node1', 1, NODE_RANK='1', **two_nodes),
    }
    outputs = wait_all(processes)
    assert 'Distributed training: True' in outputs['node 0']

    # Rank 0 (node 0) alone writes checkpoints and logs.
    assert not list((tmp_path / 'node1').glob('*.pth'))
    expected, got = state_dict(tmp_path / 'one_node'), \
        state_dict(tmp_path / 'node0')
    assert expected.keys() == got.keys()
    assert any(key.startswith('feat_head.') for key in got)
    for key, value in expected.items():
        assert torch.equal(got[key], value), key

    # The same iterations with the same logged losses. Each of the two
    # ranks takes half of the data: were node 0 training alone, it would
    # run twice the iterations and end elsewhere.
    reference = [r for r in scalars(tmp_path / 'one_node') if 'loss' in r]
    records = [r for r in scalars(tmp_path / 'node0') if 'loss' in r]
    assert len(reference) >= 3
    assert [r['iter'] for r in records] == [r['iter'] for r in reference]
    for key in ('loss', 'loss_feat', 'loss_cls', 'alpha'):
        assert [r[key] for r in records] == [r[key] for r in reference], key
    # Both branches were trained.
    assert min(r['alpha'] for r in records) < 1.0
    assert all(r['loss_cls'] > 0 for r in records[1:])
