# Mixing mmlt_hybrid into a stock mmpretrain config by inheritance: the
# ResNet-18 CIFAR-10 recipe of mmpretrain, trained on CIFAR-10-LT (IF 100)
# with a PSC feature head as an extra loss beside its own linear head.
# Everything not overridden here (backbone, neck, head, optimizer, schedule,
# runtime) is mmpretrain's.
_base_ = ['mmpretrain::resnet/resnet18_8xb16_cifar10.py']

custom_imports = dict(imports=['mmlt_hybrid'], allow_failed_imports=False)

# ImageClassifier -> HybridClassifier keeps `backbone`, `neck` and `head`;
# `feat_head` adds the contrastive branch on the 512-d pooled feature.
model = dict(
    type='HybridClassifier',
    feat_head=dict(
        type='PSCHead',
        num_classes=10,
        in_channels=512,
        out_channels=128,
        loss=dict(type='PSCLoss', temperature=1.0)))
# The stock normalisation, with the preprocessor that also packs views.
data_preprocessor = dict(type='HybridDataPreprocessor')

# Extra loss at a fixed weight: L = 0.5 * L_PSC + 0.5 * L_CE.
custom_hooks = [
    dict(type='HybridTransitionHook', schedule='constant', value=0.5),
    dict(type='ClassCountsHook'),
    dict(type='ModelDataCheckHook'),
]

# The stock CIFAR-10 set made long-tailed and served as (uniform, balanced)
# pairs; the stock train pipeline gives each view.
stock_augment = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
]
train_dataloader = dict(
    sampler=dict(_delete_=True, type='ClassBalancedPairSampler', shuffle=True),
    dataset=dict(
        _delete_=True,
        type='HybridPairDataset',
        pipeline=[
            dict(type='MultiView', num_views=2, transforms=[stock_augment]),
            dict(type='PackInputs'),
        ],
        balanced_pipeline=stock_augment + [dict(type='PackInputs')],
        dataset=dict(
            type='LongTailedDataset',
            imbalance_factor=100,
            dataset=dict(
                type='CIFAR10',
                data_root='data/cifar10',
                split='train',
                pipeline=[]))))
# mmpretrain's lr 0.1 (8xb16): --auto-scale-lr scales it from 128.
auto_scale_lr = dict(base_batch_size=128)  # lr 0.1 is for 8 GPUs x 16
val_evaluator = dict(type='LongTailAccuracy', topk=(1, ))
test_evaluator = val_evaluator
