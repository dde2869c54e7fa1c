"""The reward registry and the checks every reward's output goes through."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Protocol

import torch

from hrf.errors import HrfError


class RewardFn(Protocol):
    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, dict]: ...


REWARDS: dict[str, Callable[..., RewardFn]] = {}


def register_reward(name: str):
    """Decorator: register a factory ``(**options) -> RewardFn`` under ``name``."""

    def deco(factory):
        REWARDS[name] = factory
        return factory

    return deco


def _import_user_reward(spec: str) -> Callable[..., RewardFn]:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise HrfError(f"reward '{spec}': cannot import module '{module_name}' ({type(exc).__name__}: {exc})") from exc
    if not hasattr(module, attr):
        raise HrfError(f"reward '{spec}': module '{module_name}' has no attribute '{attr}'")
    return getattr(module, attr)


def make_reward(name: str, **options) -> RewardFn:
    """Build the reward ``name`` (registered, or ``module:function`` returning a RewardFn or being one)."""
    if ":" in name:
        obj = _import_user_reward(name)
        fn = obj(**options) if options else obj
    elif name in REWARDS:
        fn = REWARDS[name](**options)
    else:
        close = difflib.get_close_matches(name, REWARDS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise HrfError(f"unknown reward '{name}'{hint}; registered: {', '.join(sorted(REWARDS))}, or module:function")
    return fn


def validate_rewards(rewards, n: int, name: str = "reward") -> torch.Tensor:
    """Check a reward output: a float tensor of shape (n,). Non-finite values are *not* rejected here."""
    if isinstance(rewards, tuple):
        rewards = rewards[0]
    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    if rewards.shape != (n,):
        raise HrfError(f"{name} returned shape {tuple(rewards.shape)} for {n} images; it must return shape ({n},)")
    return rewards
