"""Registries of mmlt_hybrid's own, for parts that no mmpretrain registry
fits."""
from mmengine.registry import DefaultScope, Registry, build_from_cfg


def build_in_caller_scope(cfg: dict,
                          registry: Registry,
                          default_args: dict = None):
    """Build ``cfg`` from ``registry`` itself, under the caller's default
    scope.

    mmengine's ``build_from_cfg`` builds under the default scope (a
    runner's: ``'mmpretrain'``) and warns when the registry's tree has no
    registry of that scope, as a standalone registry has not; built under
    the registry's own scope instead, the mmpretrain parts a transform
    builds (RandAugment's ops) would warn alike.

    Args:
        cfg (dict): Config with a ``type`` (a name or a class) and the
            arguments.
        registry (Registry): The registry of the name.
        default_args (dict, optional): Arguments that ``cfg`` may override.

    Returns:
        object: The built object.

    Raises:
        KeyError: mmengine's, if ``type`` is missing or not registered.
    """
    obj_type = cfg.get('type') if isinstance(cfg, dict) else None
    obj_cls = registry.get(obj_type) if isinstance(obj_type, str) else obj_type
    if not callable(obj_cls) or '_scope_' in cfg:
        # mmengine's checks and errors, under the registry's own scope.
        with DefaultScope.overwrite_default_scope(registry.scope):
            return build_from_cfg(cfg, registry, default_args)
    args = dict(default_args or {}, **cfg)
    args.pop('type')
    return obj_cls(**args)


# The batch transforms of HybridDataPreprocessor.batch_transforms. Standalone
# (no parent): mmpretrain's batch augments (Mixup, CutMix) are not found
# here, nor these in mmpretrain's BATCH_AUGMENTS.
BATCH_TRANSFORMS = Registry(
    'batch transform',
    build_func=build_in_caller_scope,
    locations=['mmlt_hybrid.models.utils.batch_transforms'])
