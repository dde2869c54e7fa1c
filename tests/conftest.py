"""Shared fixtures: tiny models built from configs, and a celebahq-like noise schedule.

Nothing heavy is imported at module level: with pytest-xdist, the controlling process loads this file too but
runs no test, and an import of torch and diffusers there would delay every worker's start by seconds.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

# One thread per process, pytest-xdist's workers included: they share the cores with each other, and the
# subprocesses tests start (CLI runs, two-process training) read OMP_NUM_THREADS, as torch does when a test
# module first imports it.
os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The same count set on torch itself, in the processes that run tests (not in xdist's controller)."""
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(items):
    """Files with the most slow tests first. pytest-xdist hands whole files to its workers in this order
    (``--dist loadfile``, which builds each module fixture once; ``--no-loadscope-reorder`` keeps this order
    instead of xdist's files-with-most-tests-first), so the longest files start at once instead of one worker
    finishing them alone at the end."""
    slow = Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.path])


@pytest.fixture
def train_scheduler():
    from tests.helpers import celebahq_like_scheduler

    return celebahq_like_scheduler()


@pytest.fixture
def ddim40(train_scheduler):
    from hrf.models import make_ddim_scheduler

    return make_ddim_scheduler(train_scheduler, 40)


@pytest.fixture
def unet8():
    from hrf.models import tiny_unet

    return tiny_unet(sample_size=8, seed=0).eval()
