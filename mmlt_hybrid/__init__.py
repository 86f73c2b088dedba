"""Contrastive-learning hybrid networks for long-tailed classification.

Importing this package registers every component in mmpretrain's registries
(the device batch transforms in their own, ``mmlt_hybrid.registry``), so
configs only need ``default_scope = 'mmpretrain'`` and
``custom_imports = dict(imports=['mmlt_hybrid'], allow_failed_imports=False)``.
"""
# compat first: it fixes the stack before the other modules load
from . import compat, datasets, engine, evaluation, models  # noqa: F401
from .version import __version__

__all__ = ['__version__']
