# Runtime shared by every mmlt_hybrid experiment (mmpretrain conventions).
default_scope = 'mmpretrain'
# Registers mmlt_hybrid's components in mmpretrain's registries.
custom_imports = dict(imports=['mmlt_hybrid'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
    # Stops the run at the first NaN/inf loss term (read from what the logger
    # records, no extra device read) and never saves non-finite weights, so
    # the latest checkpoint stays the last good one. To train on regardless:
    # --cfg-options default_hooks.finite_loss.enable=False (mmengine refuses
    # None for a default hook it does not define).
    finite_loss=dict(type='FiniteLossHook'),
)

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
