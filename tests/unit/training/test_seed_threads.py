"""seed_everything and configure_threads: the one place seeds and CPU threads are set."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from medlearn.errors import ConfigError
from medlearn.training import configure_threads, seed_everything
from medlearn.training._seed import derive_seed
from medlearn.training._threads import available_cpus


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(before)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def draw() -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_seed_everything_seeds_every_rng(restore_threads) -> None:
    assert seed_everything(3) == 3
    first = draw()
    seed_everything(3)
    assert draw() == first
    seed_everything(4)
    assert draw() != first


def test_seed_everything_sets_deterministic_algorithms(restore_threads) -> None:
    seed_everything(0, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    seed_everything(0, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "0", True])
def test_bad_seed_raises_config_error(seed) -> None:
    with pytest.raises(ConfigError, match="'seed'"):
        seed_everything(seed)


def test_derive_seed_depends_on_every_counter() -> None:
    assert derive_seed(0, 1, 2) == derive_seed(0, 1, 2)
    assert len({derive_seed(0, 1, 2), derive_seed(0, 2, 1), derive_seed(1, 1, 2)}) == 3
    assert 0 <= derive_seed(2**32 - 1, 10**6) < 2**32


def test_configure_threads(monkeypatch, restore_threads) -> None:
    assert configure_threads(1) == 1 and torch.get_num_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert configure_threads() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert configure_threads() == available_cpus() == torch.get_num_threads()
    assert 1 <= available_cpus() <= (torch.multiprocessing.cpu_count() or 1)


@pytest.mark.parametrize("n", [0, -2, 1.5, True])
def test_configure_threads_refuses_bad_counts(n) -> None:
    with pytest.raises(ConfigError, match="'num_threads'"):
        configure_threads(n)
