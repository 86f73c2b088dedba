# Hybrid-SC-LA, ResNet-32, CIFAR-100-LT IF 100 (beyond the paper): the
# paper's Hybrid-SC with its classifier on the uniform views, trained with
# logit-adjusted cross-entropy (tau 1), and no class-balanced batch.
_base_ = ['./hybrid_sc_r32_cifar100lt.py']

# Both heads read the two views of every uniform image (each view a row
# with its image's label); the data preprocessor makes the views of single
# images (cls_input='uniform' sets data_preprocessor.view_single_images).
model = dict(
    cls_input='uniform',
    head=dict(loss=dict(_delete_=True, type='LogitAdjustedLoss', tau=1.0)))

# Single images of the held-in-memory long-tailed set, uniformly shuffled:
# 2 x 512 images a step instead of the paper's 3 x 512.
train_dataloader = dict(
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True))
