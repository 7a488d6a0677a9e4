"""What one trained GAN costs at each budget, the same for every GAN family so that they compare.

``IMAGES`` is the number of real images behind one model: a dcgan or progan trial trains on it,
and a dggan lineage is planned to reach it at its last planned generation (its per-generation
images are this divided by the generations). mspgsen and san keep budgets of their own; the
bench compares each champion with dcgan at the champion's own images.

The evaluation protocol per budget (``genas.evaluators``; every trial records its counts as MLflow
params ``<metric>_n_fake`` / ``<metric>_n_real``). The real side of FID/KID is always the dataset's
standard set: all its images up to 50,000, whatever the fake count. SWD compares as many real
images as fakes (fewer when the dataset has fewer: then all of them).

- ``tiny``: FID/KID 128 fakes, SWD 128 a side; quick metric for the pruner on 64 fakes. Smoke tests only.
- ``small``: FID/KID 1,000 fakes (FID-1k: biased upwards against FID-10k/50k, noisy at +-1-2),
  SWD 1,000 a side; quick on 256. A CPU's share.
- ``full``: FID/KID 10,000 fakes (FID-10k), SWD ProGAN's 16,384 a side; quick on 2,000.
"""
from __future__ import annotations

IMAGES = {"tiny": 1_024, "small": 20_000, "full": 6_000_000}
EVAL_SAMPLES = {"tiny": 128, "small": 1_000, "full": 10_000}  # fakes for FID/KID
SWD_SAMPLES = {"tiny": 128, "small": 1_000, "full": 16_384}  # fakes (and reals, up to the dataset's size) for SWD
QUICK_EVAL_SAMPLES = {"tiny": 64, "small": 256, "full": 2_000}
