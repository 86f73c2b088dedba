"""--amp on a CPU-only machine: CpuAmpOptimWrapper (bf16 autocast)."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmpretrain.registry import OPTIM_WRAPPERS

import mmlt_hybrid  # noqa: F401
from mmlt_hybrid.utils import enable_amp, make_optim_wrapper_cpu_compatible
from tool_runner import TINY_CONFIG, python_tool, run, scalars, \
    tiny_cfg_options


class TinyNet(nn.Module):

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        feat = self.conv(x)
        return feat, self.fc(feat.mean((2, 3)))


def _wrapper(model, **kwargs):
    return OPTIM_WRAPPERS.build(
        dict(type='CpuAmpOptimWrapper',
             optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
             **kwargs))


def test_forward_runs_in_bfloat16_and_update_in_float32():
    model = TinyNet()
    wrapper = _wrapper(model)
    x = torch.randn(2, 3, 8, 8)
    with wrapper.optim_context(model):
        feat, logits = model(x)
    assert feat.dtype == torch.bfloat16
    # Same numbers as running the convolution on bf16-rounded operands.
    expected = F.conv2d(x.bfloat16(), model.conv.weight.bfloat16(),
                        model.conv.bias.bfloat16())
    assert torch.equal(feat, expected)
    # Outside the context nothing is cast.
    assert model(x)[0].dtype == torch.float32

    before = model.fc.weight.detach().clone()
    loss = F.cross_entropy(logits.float(), torch.tensor([0, 1]))
    wrapper.update_params(loss)
    assert model.fc.weight.dtype == torch.float32
    assert not torch.equal(before, model.fc.weight)


def test_gradient_accumulation_is_kept():
    model = TinyNet()
    wrapper = _wrapper(model, accumulative_counts=2)
    wrapper.initialize_count_status(model, 0, 4)
    before = model.fc.weight.detach().clone()
    for step in range(2):
        with wrapper.optim_context(model):
            _, logits = model(torch.randn(2, 3, 8, 8))
        wrapper.update_params(logits.float().sum())
        assert torch.equal(before, model.fc.weight) == (step == 0)


def test_float16_is_refused():
    with pytest.raises(ValueError, match="dtype must be 'bfloat16'.*float16"):
        _wrapper(TinyNet(), dtype='float16')


def test_enable_amp_picks_the_wrapper_for_the_device():
    base = dict(optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)))
    cfg = Config(base)
    enable_amp(cfg, device='cpu')
    assert cfg.optim_wrapper == dict(type='CpuAmpOptimWrapper',
                                     optimizer=dict(type='SGD', lr=0.1))
    cfg = Config(base)
    enable_amp(cfg, device='cuda')
    assert cfg.optim_wrapper == dict(type='AmpOptimWrapper',
                                     loss_scale='dynamic',
                                     optimizer=dict(type='SGD', lr=0.1))
    cfg = Config(dict(optim_wrapper=dict(type='AmpOptimWrapper',
                                         loss_scale=512.,
                                         optimizer=dict(type='SGD'))))
    enable_amp(cfg, device='cuda')
    assert cfg.optim_wrapper.loss_scale == 512.
    with pytest.raises(ValueError, match="'OptimWrapperDict'"):
        enable_amp(Config(dict(optim_wrapper=dict(type='OptimWrapperDict'))),
                   device='cpu')


def test_gpu_amp_config_becomes_cpu_amp():
    """A config written for GPUs (AmpOptimWrapper) runs on the CPU."""
    cfg = Config(dict(optim_wrapper=dict(
        type='AmpOptimWrapper', loss_scale='dynamic', dtype='float16',
        optimizer=dict(type='SGD', lr=0.1), clip_grad=dict(max_norm=1.))))
    make_optim_wrapper_cpu_compatible(cfg)
    assert cfg.optim_wrapper == dict(type='CpuAmpOptimWrapper',
                                     optimizer=dict(type='SGD', lr=0.1),
                                     clip_grad=dict(max_norm=1.))
    plain = Config(dict(optim_wrapper=dict(optimizer=dict(type='SGD'))))
    make_optim_wrapper_cpu_compatible(plain)
    assert 'type' not in plain.optim_wrapper


def test_train_tool_amp_on_cpu(tiny_folder, tmp_path):
    """tools/train.py --amp trains an epoch on the CPU with bf16 autocast.

    The stock config has no ``custom_imports``: CpuAmpOptimWrapper is found
    because tools/train.py imports mmlt_hybrid itself.
    """
    assert 'custom_imports' not in Config.fromfile(str(TINY_CONFIG))
    work_dir = tmp_path / 'amp'
    result = run(python_tool('train.py', TINY_CONFIG, '--amp', '--work-dir',
                             work_dir, '--no-validate', '--cfg-options',
                             *tiny_cfg_options(tiny_folder),
                             'train_cfg.max_epochs=1'))
    assert '--amp: mixed precision on cpu with CpuAmpOptimWrapper' in \
        result.stdout + result.stderr
    dumped = Config.fromfile(str(work_dir / 'tiny_resnet18_cifar10.py'))
    assert dumped.optim_wrapper.type == 'CpuAmpOptimWrapper'
    losses = [r['loss'] for r in scalars(work_dir) if 'loss' in r]
    assert len(losses) == 15
    assert all(math.isfinite(loss) for loss in losses)
    checkpoint = torch.load(work_dir / 'epoch_1.pth', map_location='cpu')
    assert checkpoint['meta']['epoch'] == 1
    assert checkpoint['meta']['seed'] == 0
