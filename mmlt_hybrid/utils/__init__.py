"""Helpers shared by tools/train.py and tools/test.py."""
from .checkpoints import (
    ATOMIC_BACKEND,
    AtomicLocalBackend,
    StrictLoadHook,
    atomic_write,
    check_checkpoint,
    find_resume_checkpoint,
    make_checkpoints_atomic,
)
from .config_overrides import (
    add_data_hooks,
    enable_amp,
    make_optim_wrapper_cpu_compatible,
    require_file,
)
from .cpu_dist import (
    distributed_env_from_launcher,
    init_dist_without_cuda,
    shutdown_dist,
    use_cpu_model_wrapper,
)
from .launch import (
    add_common_args,
    build_runner,
    parse_common,
    set_launcher_and_work_dir,
    tool_parser,
)

__all__ = [
    'ATOMIC_BACKEND', 'AtomicLocalBackend', 'StrictLoadHook', 'atomic_write',
    'check_checkpoint', 'find_resume_checkpoint', 'make_checkpoints_atomic',
    'distributed_env_from_launcher', 'init_dist_without_cuda', 'shutdown_dist',
    'use_cpu_model_wrapper', 'add_data_hooks', 'enable_amp',
    'make_optim_wrapper_cpu_compatible', 'require_file', 'add_common_args',
    'build_runner', 'parse_common', 'set_launcher_and_work_dir', 'tool_parser'
]
