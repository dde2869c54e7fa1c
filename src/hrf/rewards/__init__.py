"""Reward functions: a registry of factories, each returning ``fn(images) -> (rewards, info)``.

``images`` are model-space tensors in [-1, 1] (NCHW); ``rewards`` is a float tensor of shape (N,).
Built in: ``jpeg_compressibility``, ``jpeg_incompressibility`` (DDPO's JPEG tasks, in kB) and
``aesthetic`` (CLIP ViT-L/14 + the LAION MLP, from local paths). A user reward is named
``module:function``, imported only when named; the function is the reward or a factory of it, as its
signature says (:mod:`hrf.rewards.registry`).
"""

# Importing the modules registers their rewards.
from hrf.rewards import aesthetic as _aesthetic  # noqa: F401,E402
from hrf.rewards import faces as _faces  # noqa: F401,E402
from hrf.rewards import jpeg as _jpeg  # noqa: F401,E402
from hrf.rewards import smile as _smile  # noqa: F401,E402
from hrf.rewards.registry import REWARDS, RewardFn, make_reward, register_reward, validate_rewards

__all__ = ["REWARDS", "RewardFn", "make_reward", "register_reward", "validate_rewards"]
