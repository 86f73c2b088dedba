"""Registered components; each module below registers on import."""
from .cifar_resnet import CifarResNet  # noqa: F401
