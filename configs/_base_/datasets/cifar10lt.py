# CIFAR-10-LT for the hybrid networks (docs/method.md: "The hybrid network",
# "Data protocol" and "Evaluation").
#
# Training set: the standard CIFAR-LT subset of the CIFAR-10 training set
# (exponential profile, IF 100, seed 0: 12,406 images), served as pairs of a
# uniformly sampled image in two views (feature branch) and a class-balanced
# image in one view (classifier branch). The imbalance factor is one key:
#     train_dataloader.dataset.dataset.imbalance_factor
# Test set: the balanced CIFAR-10 test set, judged by LongTailAccuracy.
#
# mmpretrain's CIFAR10 reads the python batches and gives RGB uint8 images;
# cifar10lt_folder.py swaps in an image-folder copy. The training set
# downloads the batches into data_root when they are missing (it is built
# first); without internet the run stops saying where it looked and how to
# provide them, and leaves no folder behind (LongTailedDataset). The test
# set does not download (download=False): without the data, tools/test.py
# stops naming the folder instead of creating it.
dataset_type = 'CIFAR10'
num_classes = 10

# The paper's CIFAR augmentation, the same for both branches: random crop 32
# with 4-pixel zero padding, horizontal flip, random grayscale p=0.2
# (ITU-R 601 luma weights, in the images' RGB order, kept as 3 channels).
# It runs on the whole uint8 batch on the model's device, every view of
# every image with its own draws (HybridDataPreprocessor.batch_transforms).
cifar_batch_transforms = [
    dict(type='BatchRandomCrop', crop_size=32, padding=4),
    dict(type='BatchRandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='BatchRandomGrayscale',
        prob=0.2,
        keep_channels=True,
        channel_weights=(0.299, 0.587, 0.114)),
]
data_preprocessor = dict(
    type='HybridDataPreprocessor',
    num_classes=num_classes,
    # RGB normalisation of mmpretrain's CIFAR-10 configs (= the
    # (0.4914, 0.4822, 0.4465) / (0.2023, 0.1994, 0.2010) of the
    # long-tail code bases, times 255)
    mean=[125.307, 122.961, 113.8575],
    std=[51.5865, 50.847, 51.255],
    # the images are RGB already
    to_rgb=False,
    # two views of every uniform image for the feature branch; the balanced
    # image (and a plain-CE batch) gets one, with the same augmentation
    num_views=2,
    batch_transforms=cifar_batch_transforms,
    # The convolutions run channels-last: the same losses as contiguous
    # images, and a full training iteration 1.25 times as fast in fp32 on an
    # AVX2 CPU (docs/benchmarks.md); on GPUs the layout tensor cores prefer.
    channels_last=True)

# The same augmentation as per-sample mmpretrain transforms, for the
# per-sample path (cifar10lt_per_sample.py): two views of the uniform image
# for the feature branch, one view of the balanced image.
cifar_augment = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='RandomGrayscale',
        prob=0.2,
        keep_channels=True,
        channel_weights=(0.299, 0.587, 0.114)),
]
feat_pipeline = [
    dict(type='MultiView', num_views=2, transforms=[cifar_augment]),
    dict(type='PackInputs'),
]
cls_pipeline = cifar_augment + [dict(type='PackInputs')]
test_pipeline = [dict(type='PackInputs')]

# The paper's batch: 512 per branch on one GPU (each step sees 3 x 512
# images). The long-tailed training set is decoded once and held in memory
# as one uint8 tensor (CIFAR-10-LT: 37 MB); a batch is gathered from it by
# the sampler's indices, so no worker processes are needed.
train_dataloader = dict(
    batch_size=512,
    num_workers=0,
    persistent_workers=False,
    # Stack the images of a batch where the batch is made (with workers:
    # in the worker, one shared-memory block per view, instead of one per
    # image); the preprocessor takes stacked or single images alike.
    collate_fn=dict(type='default_collate'),
    sampler=dict(type='ClassBalancedPairSampler', shuffle=True),
    dataset=dict(
        type='HybridPairDataset',
        # the decoded image only, packed as a CHW uint8 tensor
        pipeline=[dict(type='PackInputs')],
        hold_in_memory=True,
        dataset=dict(
            type='LongTailedDataset',
            imbalance_factor=100,
            profile='exp',
            seed=0,
            # The wrapped set only reads images (no augmentation, no
            # packing): HybridPairDataset packs them.
            dataset=dict(
                type=dataset_type,
                data_root='data/cifar10',
                split='train',
                pipeline=[]))),
)

val_dataloader = dict(
    batch_size=128,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root='data/cifar10',
        split='test',
        test_mode=True,
        download=False,
        pipeline=test_pipeline),
)
# Per-class training counts are filled in from the training set by
# ClassCountsHook (set class_counts=[...] here to give them explicitly).
val_evaluator = dict(type='LongTailAccuracy', topk=(1, ))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
