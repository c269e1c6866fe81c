"""Seeding: one function for the whole process, and seeds derived from (seed, counters)."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from medlearn.errors import ConfigError

__all__ = ["derive_seed", "reseed", "seed_everything"]

_MAX_SEED = 2**32 - 1


def _check_seed(seed: int) -> int:
    if (
        isinstance(seed, bool)
        or not isinstance(seed, (int, np.integer))
        or not (0 <= seed <= _MAX_SEED)
    ):
        raise ConfigError(
            f"The 'seed' parameter must be an integer in [0, 2**32 - 1]. Got {seed!r}.",
            hint="For example: training.seed: 0",
        )
    return int(seed)


def derive_seed(seed: int, *counters: int) -> int:
    """A 32-bit seed that depends only on ``seed`` and ``counters`` (e.g. epoch, batch).

    Uses numpy's ``SeedSequence``, so nearby inputs give unrelated seeds.

    Example:
        >>> derive_seed(0, 3, 7) == derive_seed(0, 3, 7) != derive_seed(0, 7, 3)
        True
    """
    entropy = [_check_seed(seed), *(int(c) for c in counters)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def reseed(seed: int) -> None:
    """Seed Python's ``random``, numpy's global RNG and torch (CPU and every GPU)."""
    seed = _check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def seed_everything(seed: int, *, deterministic: bool = True) -> int:
    """Seed every RNG and choose deterministic algorithms.

    Args:
        seed: an integer in ``[0, 2**32 - 1]``.
        deterministic: use deterministic algorithms (warning, not failing, for operations that
            have none), disable cuDNN autotuning and set the cuBLAS workspace for determinism.
            ``False`` switches deterministic algorithms off again.

    Returns:
        ``seed``, so it can be recorded.

    Raises:
        ConfigError: if ``seed`` is not an integer in range.
    """
    seed = _check_seed(seed)
    reseed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
    return seed
