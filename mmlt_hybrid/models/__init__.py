"""Models: backbones, losses, heads, classifiers and the data preprocessor."""
from . import backbones, classifiers, heads, losses, utils  # noqa: F401
