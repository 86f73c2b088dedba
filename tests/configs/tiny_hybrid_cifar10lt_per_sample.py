# The Hybrid-SC CIFAR-10-LT recipe on the per-sample path (mmcv transforms
# in the data workers, configs/_base_/datasets/cifar10lt_per_sample.py), read
# from an image folder. The tests set the folder, the workers and the run
# length with --cfg-options.
_base_ = [
    '../../configs/_base_/datasets/cifar10lt_per_sample.py',
    '../../configs/_base_/models/hybrid_sc_r32.py',
    '../../configs/_base_/schedules/cifar_lt_200e.py',
    '../../configs/_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=10))
load_rgb = [
    dict(type='LoadImageFromFile'),
    dict(type='NumpyToPIL', to_rgb=True),
    dict(type='PILToNumpy', to_bgr=False),
]
train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            dataset=dict(
                _delete_=True,
                type='CustomDataset',
                data_root='data/cifar10_folder',
                data_prefix='train',
                pipeline=load_rgb))))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='data/cifar10_folder',
        data_prefix='test',
        test_mode=True,
        pipeline=load_rgb + [dict(type='PackInputs')]))
test_dataloader = val_dataloader
