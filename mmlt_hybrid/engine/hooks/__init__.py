"""Registered components; each module below registers on import."""
from .class_counts_hook import ClassCountsHook  # noqa: F401
from .finite_loss_hook import FiniteLossHook  # noqa: F401
from .hybrid_transition_hook import HybridTransitionHook  # noqa: F401
from .model_data_check_hook import ModelDataCheckHook  # noqa: F401
from .rng_state_hook import GlobalRngStateHook  # noqa: F401
