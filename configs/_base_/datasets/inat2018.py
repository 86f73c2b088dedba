# iNaturalist 2018 (8,142 species, 437.5k training images, 1000 ... 2 per
# class; 24.4k validation images, 3 per class) for the hybrid networks:
# imagenetlt.py with the iNaturalist lists.
#
# Expected layout (the list files of the Decoupling release, lines
# "<path relative to data_root> <label>"):
#     data/inat2018/train_val2018/<supercategory>/<id>/<image>.jpg
#     data/inat2018/meta/iNaturalist18_train.txt, iNaturalist18_val.txt
#
# The per-class counts give many/medium/few with the usual 100 / 20
# thresholds. With 8,142 classes a PSC model may sample negative prototypes
# (see docs/method.md, "PSC loss").
_base_ = ['./imagenetlt.py']

data_root = 'data/inat2018'
num_classes = 8142
data_preprocessor = dict(num_classes=num_classes)

train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            dataset=dict(
                data_root=data_root,
                ann_file='meta/iNaturalist18_train.txt'))))
val_dataloader = dict(
    dataset=dict(data_root=data_root, ann_file='meta/iNaturalist18_val.txt'))
test_dataloader = val_dataloader
