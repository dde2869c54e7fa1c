"""Start-step schedules and HRF-D's selection rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hrf.errors import HrfError
from hrf.training.schedule import DynamicSchedule, FullSchedule, WindowSchedule, select_start_step


def test_full_schedule_is_zero():
    assert FullSchedule().starts(3, 5, torch.Generator()).tolist() == [0] * 5


def test_windows_uniform_advance_and_after_last():
    s = WindowSchedule([(3, 7), (18, 22), (28, 32)], [2, 1, 3], after_last="stop")
    assert [s.window_index(e) for e in range(6)] == [0, 0, 1, 2, 2, 2]
    assert not s.finished(5) and s.finished(6)
    g = torch.Generator().manual_seed(0)
    draws = s.starts(0, 20000, g)
    assert draws.min() == 3 and draws.max() == 7
    counts = np.bincount(draws.numpy() - 3)
    assert np.all(np.abs(counts / 20000 - 0.2) < 0.015)  # uniform over the inclusive window
    assert set(s.starts(2, 500, g).tolist()) == set(range(18, 23))
    hold = WindowSchedule([(1, 1), (5, 5)], [1, 1], after_last="hold")
    assert hold.starts(10, 3, g).tolist() == [5, 5, 5] and not hold.finished(10)
    cycle = WindowSchedule([(1, 1), (5, 5)], [1, 1], after_last="cycle")
    assert [cycle.starts(e, 1, g).item() for e in range(5)] == [1, 5, 1, 5, 1]


def test_resume_continues_mid_window():
    """The schedule is a function of the epoch: a fresh object at epoch 3 is where the old one was."""
    a = WindowSchedule([(3, 7), (18, 22)], [2, 2])
    b = WindowSchedule([(3, 7), (18, 22)], [2, 2])
    b.load_state_dict(a.state_dict())
    assert a.describe(3) == b.describe(3) == "window 2/2 [18,22]"


def test_select_start_step_constructed_table():
    cands = [0, 10, 20, 30]
    # rewards jump most between 10 and 20; no distance penalty → 20
    assert select_start_step(cands, [0.0, 0.1, 0.9, 1.0], [0, 0, 0, 0], beta=0.0) == 20
    # a large distance at 20 moves the choice to 30
    assert select_start_step(cands, [0.0, 0.1, 0.9, 1.0], [1.0, 1.0, 1.0, 0.0], beta=2.0) == 30


def test_select_start_step_best_is_first_candidate():
    """The authors' code returned steps[argmax − 1], which wraps to the last step when argmax is 0."""
    cands = [4, 8, 12]
    assert select_start_step(cands, [1.0, 0.5, 0.0], [0.0, 0.5, 1.0], beta=1.0) == 4


def test_dynamic_schedule_uses_probe_per_reference():
    s = DynamicSchedule([0, 5, 10], beta=0.0)
    R = np.array([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    starts = s.starts(0, 2, torch.Generator(), probe=lambda c: (R, np.zeros_like(R)))
    assert starts.tolist() == [5, 10]


def test_candidates_without_a_finite_reward_are_left_out():
    """A NaN R (no finite probe reward) must neither win nor flatten the min-max of the others."""
    cands = [0, 10, 20]
    assert select_start_step(cands, [0.5, np.nan, 1.0], [0.0, 0.0, 0.0], beta=0.0) == 20
    # read as R = 0, the NaN candidate would make 20's ΔR = 0.95 > 0 and win; left out, 20 is worse than 0
    assert select_start_step(cands, [1.0, np.nan, 0.95], [0.0, 0.0, 0.0], beta=0.0) == 0
    with pytest.raises(HrfError, match="no HRF-D candidate"):
        select_start_step(cands, [np.nan] * 3, [0.0] * 3, beta=0.0)
