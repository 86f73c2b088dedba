"""What the CPU is, as a results row records it and ``--amp`` decides by."""
import platform
from typing import Dict, List

#: CPU flags (``/proc/cpuinfo``) that tell how fast the convolutions and
#: bf16 can run; a results row lists those the CPU has.
SPEED_FLAGS = ('avx2', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'amx_tile',
               'amx_bf16')
#: Flags of a CPU that computes bfloat16 natively (AVX512-BF16 or AMX).
NATIVE_BF16_FLAGS = ('avx512_bf16', 'amx_bf16')


def read_cpuinfo(path: str = '/proc/cpuinfo') -> Dict[str, object]:
    """The model name and flags of the first processor in ``path``.

    Args:
        path (str): A file in the format of Linux's ``/proc/cpuinfo``.

    Returns:
        dict: ``model`` (str; ``platform.processor()`` or the machine type
        where the file has none) and ``flags`` (list of str, empty where the
        file is missing).
    """
    model, flags = '', []
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(':')
                key = key.strip()
                if key == 'model name' and not model:
                    model = value.strip()
                elif key == 'flags' and not flags:
                    flags = value.split()
                if model and flags:
                    break
    except OSError:
        pass
    return dict(
        model=model or platform.processor() or platform.machine(), flags=flags)


def speed_flags(flags: List[str]) -> List[str]:
    """The flags of :data:`SPEED_FLAGS` that ``flags`` holds, in that order."""
    return [flag for flag in SPEED_FLAGS if flag in flags]


def has_native_bf16(flags: List[str]) -> bool:
    """Whether a CPU with ``flags`` computes bfloat16 natively.

    Without one of :data:`NATIVE_BF16_FLAGS` oneDNN emulates bf16 matrix
    work in float32 instructions plus conversions: slower than float32
    (a ResNet-32 step about 13x slower on an AVX2 CPU, docs/benchmarks.md).
    """
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


__all__ = [
    'SPEED_FLAGS', 'NATIVE_BF16_FLAGS', 'read_cpuinfo', 'speed_flags',
    'has_native_bf16'
]
