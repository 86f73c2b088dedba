# A stock mmpretrain config (ResNet-18 on CIFAR-10) pointed at a generated
# image folder. Only the data source changes here: CIFAR10 reads the binary
# batches, an image folder needs CustomDataset and LoadImageFromFile. The
# tests set the folders (data_root) and shrink the run with --cfg-options.
_base_ = ['mmpretrain::resnet/resnet18_8xb16_cifar10.py']

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='data/tiny/train',
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='data/tiny/test',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
