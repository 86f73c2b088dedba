"""--amp on a CPU-only machine: CpuAmpOptimWrapper (bf16 autocast)."""
import logging
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmpretrain.registry import OPTIM_WRAPPERS
from tool_runner import TINY_CONFIG, load_tool, scalars, tiny_cfg_options

import mmlt_hybrid  # noqa: F401
from mmlt_hybrid.utils import (
    config_overrides,
    enable_amp,
    make_optim_wrapper_cpu_compatible,
)
from mmlt_hybrid.utils.cpu_info import (
    has_native_bf16,
    read_cpuinfo,
    speed_flags,
)


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
        dict(
            type='CpuAmpOptimWrapper',
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
    assert enable_amp(cfg, device='cpu', cpu_flags=NATIVE)
    assert cfg.optim_wrapper == dict(
        type='CpuAmpOptimWrapper', optimizer=dict(type='SGD', lr=0.1))
    cfg = Config(base)
    enable_amp(cfg, device='cuda')
    assert cfg.optim_wrapper == dict(
        type='AmpOptimWrapper',
        loss_scale='dynamic',
        optimizer=dict(type='SGD', lr=0.1))
    cfg = Config(
        dict(
            optim_wrapper=dict(
                type='AmpOptimWrapper',
                loss_scale=512.,
                optimizer=dict(type='SGD'))))
    enable_amp(cfg, device='cuda')
    assert cfg.optim_wrapper.loss_scale == 512.
    with pytest.raises(ValueError, match="'OptimWrapperDict'"):
        enable_amp(
            Config(dict(optim_wrapper=dict(type='OptimWrapperDict'))),
            device='cpu',
            cpu_flags=NATIVE)


#: Flags of an AVX-512 CPU with BF16, of an AMX CPU, and of an AVX2 CPU.
NATIVE = ['sse2', 'avx2', 'avx512f', 'avx512_bf16']
AMX = ['sse2', 'avx2', 'avx512f', 'amx_tile', 'amx_bf16']
AVX2 = ['sse2', 'avx', 'avx2', 'fma']


@pytest.mark.parametrize('flags,switched', [(NATIVE, True), (AMX, True),
                                            (AVX2, False),
                                            (AVX2 + ['avx512f'], False)])
def test_enable_amp_on_cpu_needs_native_bf16(flags, switched):
    """bf16 autocast only where the CPU computes bf16 natively; elsewhere
    the wrapper stays float32 and a warning names the reason."""
    cfg = Config(dict(optim_wrapper=dict(optimizer=dict(type='SGD'))))
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        assert enable_amp(cfg, device='cpu', cpu_flags=flags) is switched
    finally:
        logger.removeHandler(handler)
    assert cfg.optim_wrapper.get('type') == ('CpuAmpOptimWrapper'
                                             if switched else None)
    warned = [r for r in records if '--amp ignored' in r.getMessage()]
    if switched:
        assert warned == []
    else:
        assert len(warned) == 1
        assert warned[0].levelno == logging.WARNING
        message = warned[0].getMessage()
        assert 'no native bfloat16' in message
        assert 'avx512_bf16' in message and 'float32' in message


def test_read_cpuinfo_and_native_bf16(tmp_path):
    """The model and flags are read from a cpuinfo file (the first
    processor's); a missing file gives no flags, hence no native bf16."""
    info = tmp_path / 'cpuinfo'
    info.write_text('processor\t: 0\nmodel name\t: Fake CPU 9000\n'
                    'flags\t\t: fpu avx2 avx512f avx512_bf16\n\n'
                    'processor\t: 1\nmodel name\t: Other\nflags\t: fpu\n')
    cpu = read_cpuinfo(str(info))
    assert cpu['model'] == 'Fake CPU 9000'
    assert cpu['flags'] == ['fpu', 'avx2', 'avx512f', 'avx512_bf16']
    assert has_native_bf16(cpu['flags'])
    assert speed_flags(cpu['flags']) == ['avx2', 'avx512f', 'avx512_bf16']
    missing = read_cpuinfo(str(tmp_path / 'none'))
    assert missing['flags'] == [] and not has_native_bf16(missing['flags'])


def test_gpu_amp_config_becomes_cpu_amp():
    """A config written for GPUs (AmpOptimWrapper) runs on the CPU."""
    cfg = Config(
        dict(
            optim_wrapper=dict(
                type='AmpOptimWrapper',
                loss_scale='dynamic',
                dtype='float16',
                optimizer=dict(type='SGD', lr=0.1),
                clip_grad=dict(max_norm=1.))))
    make_optim_wrapper_cpu_compatible(cfg)
    assert cfg.optim_wrapper == dict(
        type='CpuAmpOptimWrapper',
        optimizer=dict(type='SGD', lr=0.1),
        clip_grad=dict(max_norm=1.))
    plain = Config(dict(optim_wrapper=dict(optimizer=dict(type='SGD'))))
    make_optim_wrapper_cpu_compatible(plain)
    assert 'type' not in plain.optim_wrapper


@pytest.mark.parametrize('flags,wrapper', [(NATIVE, 'CpuAmpOptimWrapper'),
                                           (AVX2, 'OptimWrapper')])
def test_train_tool_amp_on_cpu(flags, wrapper, tiny_folder, tmp_path,
                               monkeypatch):
    """tools/train.py --amp trains an epoch on the CPU: with bf16 autocast
    where the CPU has native bf16 (faked here), in float32 with a warning
    where it has not. The epoch is 3 steps of the first 48 images (bf16 is
    emulated, hence slow, on a CPU without it).

    The stock config has no ``custom_imports``: CpuAmpOptimWrapper is found
    because tools/train.py imports mmlt_hybrid itself.
    """
    assert 'custom_imports' not in Config.fromfile(str(TINY_CONFIG))
    monkeypatch.setattr(config_overrides, 'read_cpuinfo',
                        lambda: dict(model='Faked CPU', flags=flags))
    logged = []
    monkeypatch.setattr(config_overrides, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    work_dir = tmp_path / 'amp'
    load_tool('train.py').main([
        str(TINY_CONFIG), '--amp', '--work-dir',
        str(work_dir), '--no-validate', '--cfg-options',
        *tiny_cfg_options(tiny_folder), 'train_cfg.max_epochs=1',
        'train_dataloader.dataset.indices=48'
    ])
    expected = ('--amp: mixed precision on cpu with CpuAmpOptimWrapper'
                if wrapper == 'CpuAmpOptimWrapper' else
                '--amp ignored: this CPU (Faked CPU) has no native bfloat16')
    assert [msg for msg in logged if msg.startswith('--amp')
            ] == [msg for msg in logged if msg.startswith(expected)] != []
    dumped = Config.fromfile(str(work_dir / 'tiny_resnet18_cifar10.py'))
    assert dumped.optim_wrapper.get('type', 'OptimWrapper') == wrapper
    losses = [r['loss'] for r in scalars(work_dir) if 'loss' in r]
    assert len(losses) == 3  # 48 images, batch 16
    assert all(math.isfinite(loss) for loss in losses)
    checkpoint = torch.load(work_dir / 'epoch_1.pth', map_location='cpu')
    assert checkpoint['meta']['epoch'] == 1
    assert checkpoint['meta']['seed'] == 0
