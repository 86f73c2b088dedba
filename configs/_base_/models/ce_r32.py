# ResNet-32 for CIFAR with a linear classifier trained by cross-entropy: the
# plain-CE baseline, and the base that the hybrid models extend.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='CifarResNet', depth=32),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
    ))

# Fills LongTailAccuracy's per-class training counts from the training set;
# checks the model against the training set before training.
custom_hooks = [dict(type='ClassCountsHook'), dict(type='ModelDataCheckHook')]
