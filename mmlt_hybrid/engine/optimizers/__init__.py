"""Registered components; each module below registers on import."""
from .cpu_amp_optim_wrapper import CpuAmpOptimWrapper  # noqa: F401
