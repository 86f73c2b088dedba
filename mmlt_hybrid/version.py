"""Version of the mmlt_hybrid package."""

__version__ = '0.1.0'
