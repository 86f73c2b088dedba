# CIFAR-10-LT read from an image-folder copy of CIFAR-10
# (<data_root>/{train,test}/<class>/<NNNNN>.png, classes in sorted order, file
# names giving the original order, like ../shared/data/cifar10).
#
# Only the datasets differ from cifar10lt.py: ImageFolderDataset (mmpretrain's
# CustomDataset with hidden folders such as .ipynb_checkpoints skipped, so
# they do not become classes) instead of CIFAR10, and a loading step that
# gives RGB uint8 arrays like CIFAR10 does (mmcv decodes to BGR;
# NumpyToPIL(to_rgb=True) + PILToNumpy turn it back; CheckedLoadImageFromFile
# names a file it cannot read), so the augmentations, the normalisation
# (to_rgb=False) and the long-tailed selection are those of cifar10lt.py
# unchanged.
_base_ = ['./cifar10lt.py']

folder_root = 'data/cifar10_folder'
load_rgb = [
    dict(type='CheckedLoadImageFromFile'),
    dict(type='NumpyToPIL', to_rgb=True),
    dict(type='PILToNumpy', to_bgr=False),
]

train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            dataset=dict(
                _delete_=True,
                type='ImageFolderDataset',
                data_root=folder_root,
                data_prefix='train',
                pipeline=load_rgb))))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ImageFolderDataset',
        data_root=folder_root,
        data_prefix='test',
        test_mode=True,
        pipeline=load_rgb + [dict(type='PackInputs')]))
test_dataloader = val_dataloader
