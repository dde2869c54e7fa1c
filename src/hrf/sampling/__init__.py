"""The denoising chain as an MDP: one DDIM step with its exact log-probability, start states, rollouts."""

from hrf.sampling.condition import Condition, predict_noise
from hrf.sampling.ddim import (
    ddim_step_with_logprob,
    gaussian_step_kl,
    noise_to_step,
    predicted_x0,
    prev_timesteps,
    start_states,
    step_sigmas,
)
from hrf.sampling.noise import (
    DEFAULT_NOISE,
    NOISE_SCHEMES,
    Noise,
    NoiseScheme,
    SampleNoise,
    make_noise,
    noise_key,
)
from hrf.sampling.rollout import Trajectory, branch_images, rollout, sample_images

__all__ = [
    "Condition",
    "DEFAULT_NOISE",
    "NOISE_SCHEMES",
    "Noise",
    "NoiseScheme",
    "SampleNoise",
    "predict_noise",
    "Trajectory",
    "branch_images",
    "ddim_step_with_logprob",
    "gaussian_step_kl",
    "make_noise",
    "noise_key",
    "noise_to_step",
    "predicted_x0",
    "prev_timesteps",
    "rollout",
    "sample_images",
    "start_states",
    "step_sigmas",
]
