# CIFAR-100-LT read from an image-folder copy of CIFAR-100
# (<data_root>/{train,test}/<class>/<NNNNN>.png, classes in sorted order
# giving the canonical labels, file names giving the original order).
#
# cifar100lt.py with only the datasets swapped, as cifar10lt_folder.py does
# for CIFAR-10: ImageFolderDataset (hidden folders skipped) plus a loading
# step that gives RGB arrays like CIFAR100 does, so augmentation and
# normalisation stay unchanged.
_base_ = ['./cifar100lt.py']

folder_root = 'data/cifar100_folder'
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
