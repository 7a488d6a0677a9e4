"""What one trained GAN costs at each budget, the same for every GAN family so that they compare.

``IMAGES`` is the number of real images behind one model: a dcgan or progan trial trains on it,
and a dggan lineage is planned to reach it at its last planned generation (its per-generation
images are this divided by the generations). mspgsen and san keep budgets of their own; the
bench compares each champion with dcgan at the champion's own images.

The evaluation protocol per budget (real side: the dataset's own images, up to 50,000 for FID
features and up to 16,384 for SWD descriptors; fake side below; every trial records its counts):

- ``tiny``: 128 fakes (64 for the quick metric the pruner reads): smoke tests only.
- ``small``: 1,000 fakes (256 quick): a CPU's share; numbers are FID-1k / SWD-1k, noisy at +-1-2.
- ``full``: 10,000 fakes (2,000 quick): FID-10k; SWD with ProGAN's 16,384 a side.
"""
from __future__ import annotations

IMAGES = {"tiny": 1_024, "small": 20_000, "full": 6_000_000}
EVAL_SAMPLES = {"tiny": 128, "small": 1_000, "full": 10_000}
QUICK_EVAL_SAMPLES = {"tiny": 64, "small": 256, "full": 2_000}
