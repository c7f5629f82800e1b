"""Seeds: the global RNGs of a process, and seeds derived from a run's SEED for its streams."""

from __future__ import annotations

import random

import numpy as np
import torch

SEED_STRIDE = 1_000_003  # a prime: derived seeds of nearby SEEDs and indices do not collide


def derive_seed(seed: int, index: int) -> int:
    """The seed of item ``index`` (an iteration, a stream) of a run seeded ``seed``."""
    return seed * SEED_STRIDE + index


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
