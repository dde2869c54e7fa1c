"""The denoising chain as an MDP: one DDIM step with its exact log-probability, start states, rollouts."""

from hrf.sampling.ddim import (
    ddim_step_with_logprob,
    gaussian_step_kl,
    noise_to_step,
    prev_timesteps,
    start_states,
    step_sigmas,
)
from hrf.sampling.rollout import Trajectory, rollout, sample_images

__all__ = [
    "Trajectory",
    "ddim_step_with_logprob",
    "gaussian_step_kl",
    "noise_to_step",
    "prev_timesteps",
    "rollout",
    "sample_images",
    "start_states",
    "step_sigmas",
]
