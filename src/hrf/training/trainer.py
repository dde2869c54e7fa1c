"""One trainer for DDPO_IS, HRF and HRF-D (paper Algorithms 1–2): they differ only in the start schedule.

An epoch: the current model generates reference images; the schedule gives each reference a start step
k; ``branches`` trajectories are rolled out from the reference noised to k; rewards; advantages; the
PPO-clipped loss on exactly the steps after each start, accumulated into ``updates_per_epoch`` optimizer
steps. The math lives in ``hrf.sampling`` and ``hrf.training.loss``; this module only composes it.

With several processes, every point where one process may fail (rewards, a trained-step count, a loss)
is followed by a vote of all processes before the next collective, so that every process stops with the
same one-line error instead of the healthy ones waiting forever in a gather or an all-reduce.
"""

from __future__ import annotations

import copy
import json
import math
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from hrf.config import Config, derived_quantities
from hrf.errors import HrfError
from hrf.images import cosine_distance
from hrf.models import load_scheduler, load_unet, make_ddim_scheduler
from hrf.models.latent import add_unet_lora, is_latent_pipeline, load_latent_pipeline, save_lora
from hrf.rewards import make_reward, validate_rewards
from hrf.sampling import (
    Trajectory,
    branch_images,
    ddim_step_with_logprob,
    gaussian_step_kl,
    predict_noise,
    rollout,
    sample_images,
    start_states,
    step_sigmas,
)
from hrf.training.checkpoint import load_checkpoint_state, save_checkpoint
from hrf.training.loss import compute_advantages, ppo_clip_loss
from hrf.training.objectives import (
    initial_log_z,
    kl_beta_advantages,
    kl_weight,
    leave_one_out_centred,
    rtb_log_z_grad,
    rtb_residual,
    rtb_surrogate,
)
from hrf.training.prompts import PerPromptStatTracker, draw_prompts, make_conditioner, prompt_source
from hrf.training.schedule import make_schedule
from hrf.training.trackers import PROJECT, scalars, tracker_kwargs

# Purposes of the per-epoch random streams, so that drawing more in one never shifts another.
_SAMPLING, _TRAINING, _PROMPTS = 0, 1, 2


def epoch_generator(seed: int, epoch: int, rank: int, purpose: int, device="cpu") -> torch.Generator:
    """A generator that depends only on (run seed, epoch, rank, purpose): resume needs no RNG state."""
    state = np.random.SeedSequence([seed, epoch, rank, purpose]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator(device).manual_seed(int(state) & ((1 << 63) - 1))


def resolve_mixed_precision(requested: str, cuda: bool, bf16_supported: bool) -> str:
    """The precision to run: ``"auto"`` is bf16 on a GPU that has it, fp16 on an older GPU, none on the CPU.

    bf16 has fp32's exponent range, so it needs no loss scaling; fp16 overflows are handled by accelerate's
    GradScaler (the step is skipped and the scale lowered).
    """
    if requested != "auto":
        return requested
    if not cuda:
        return "no"
    return "bf16" if bf16_supported else "fp16"


def trained_mask(trainable: torch.Tensor, skip_last: int = 0) -> torch.Tensor:
    """The steps a trajectory trains: its trainable steps but step indices T−1−skip_last..T−2, the last
    stochastic steps before the deterministic one, whose σ is tiny, so their score (x−μ)/σ² = z/σ makes
    their gradient mostly noise (docs/MATH.md §3)."""
    if not skip_last:
        return trainable
    last = trainable.shape[1] - 1 - skip_last
    return trainable & (torch.arange(trainable.shape[1], device=trainable.device) < last)


def trainable_pairs(trainable: torch.Tensor, fraction: float, generator: torch.Generator, skip_last: int = 0):
    """(row, step) pairs to train: each trajectory's trained steps (:func:`trained_mask`), a random ``fraction``
    of them kept."""
    rows, steps = trained_mask(trainable, skip_last).nonzero(as_tuple=True)
    if fraction >= 1.0:
        return rows, steps
    keep = torch.zeros(len(rows), dtype=torch.bool)
    for r in rows.unique():
        idx = (rows == r).nonzero().squeeze(1)
        n = max(1, math.ceil(len(idx) * fraction))
        keep[idx[torch.randperm(len(idx), generator=generator, device=generator.device)[:n]]] = True
    return rows[keep], steps[keep]


def trajectory_chunks(rows: torch.Tensor, parts: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Indices into ``rows`` split into ``parts`` chunks, each holding all pairs of a random share of the
    trajectories: a trajectory-balance residual needs the whole trajectory in the update that uses it."""
    ids = rows.unique()
    ids = ids[torch.randperm(len(ids), generator=generator, device=generator.device)]
    return [torch.isin(rows, group).nonzero().squeeze(1) for group in torch.tensor_split(ids, parts)]


def agree_on_errors(acc, error: HrfError | None) -> None:
    """Raise on every process if any process failed, with the failed process's message; else return.

    Every process must call it at the same point: it is a collective (one all-reduce; a gather on failure).
    """
    if acc.num_processes == 1:
        if error is not None:
            raise error
        return
    from accelerate.utils import gather_object

    failed = acc.reduce(torch.tensor([float(error is not None)], device=acc.device), reduction="sum")
    if float(failed) == 0:
        return
    messages = gather_object([None if error is None else str(error)])
    raise HrfError(next(m for m in messages if m is not None))


class Trainer:
    """Composes model, schedule, rollout, reward, loss and checkpoints into a resumable run."""

    def __init__(
        self,
        cfg: Config,
        run_dir: str | Path,
        *,
        unet=None,
        train_scheduler=None,
        reward_fn=None,
        accelerator=None,
        progress: bool = True,
        device: str | None = None,
    ):
        from accelerate import Accelerator

        self.cfg = cfg
        self.run_dir = Path(run_dir)
        # accelerate places each process (its GPU, or the CPU); device="cpu" keeps a run off the GPU
        cuda = torch.cuda.is_available() and device != "cpu"
        precision = resolve_mixed_precision(cfg.model.mixed_precision, cuda, cuda and torch.cuda.is_bf16_supported())
        self.acc = accelerator or Accelerator(
            mixed_precision=precision, cpu=not cuda, **tracker_kwargs(cfg.output.trackers, self.run_dir)
        )
        if cfg.output.trackers:
            self.acc.init_trackers(PROJECT)
        self.progress = progress and self.acc.is_main_process
        self.derived = derived_quantities(cfg, self.acc.num_processes) | {"device": str(self.acc.device)}
        self.pipe = None  # a latent text-to-image pipeline's VAE and text encoder, when the model is one
        if unet is None and is_latent_pipeline(cfg.model.path):
            if not cfg.model.lora_rank:
                raise HrfError(
                    f"'{cfg.model.path}' is a text-to-image pipeline: hrf trains LoRA on it; set model.lora_rank"
                )
            self.pipe = load_latent_pipeline(cfg.model.path)
            self.pipe.to(self.acc.device, torch.bfloat16 if precision == "bf16" else torch.float32)
            if cfg.model.vae_slicing:
                self.pipe.vae.enable_slicing()
            unet, train_scheduler = self.pipe.unet, train_scheduler or self.pipe.scheduler
        unet = unet if unet is not None else load_unet(cfg.model.path, device=self.acc.device)
        self.train_scheduler = train_scheduler if train_scheduler is not None else load_scheduler(cfg.model.path)
        self.conditioner = make_conditioner(
            prompt_source(cfg.prompts), unet, self.pipe, cfg.prompts.null_class, f"model '{cfg.model.path}'"
        )
        self.stat_tracker = (
            PerPromptStatTracker(cfg.prompts.buffer_size, cfg.prompts.min_count)
            if cfg.train.advantage_norm == "prompt"
            else None
        )
        self.ddim = make_ddim_scheduler(self.train_scheduler, cfg.sampling.num_steps)
        to_base = cfg.train.kl_coef or cfg.train.kl_beta
        self.base = copy.deepcopy(unet).requires_grad_(False).eval().to(self.acc.device) if to_base else None
        # RTB's log Z: a float64 scalar with its own Adam, outside the model's optimizer and its lr schedule
        self.log_z = torch.zeros((), dtype=torch.float64, requires_grad=True)
        self.log_z_set = False
        self.log_z_opt = torch.optim.Adam([self.log_z], lr=cfg.train.rtb_logz_lr)
        if cfg.model.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
        if cfg.model.lora_rank:
            from hrf.models.lora import add_lora

            unet = add_unet_lora(unet, cfg.model.lora_rank) if self.pipe else add_lora(unet, cfg.model.lora_rank)
        unet.train()
        params = [p for p in unet.parameters() if p.requires_grad]
        t = cfg.train
        optimizer = torch.optim.AdamW(
            params, lr=t.lr, betas=tuple(t.adam_betas), eps=t.adam_eps, weight_decay=t.weight_decay
        )
        warmup = t.warmup_epochs * t.updates_per_epoch * t.inner_epochs
        # Not passed to acc.prepare: accelerate would step it once per process for every optimizer step, ending
        # the warm-up N times too early with N processes. It is stepped once per update that was not skipped.
        self.lr_sched = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0
        )
        self.unet, self.optimizer = self.acc.prepare(unet, optimizer)
        self.params = params
        self.reward_fn = (
            reward_fn
            if reward_fn is not None
            else make_reward(cfg.reward.name, default_device=self.acc.device, **cfg.reward.options)
        )
        self.schedule = make_schedule(cfg.schedule)
        self.epoch = 0
        self.checkpointed_epoch = 0  # the epoch of the last checkpoint written or resumed from (epoch 0 needs none)
        self.stopped_reason: str | None = None

    # ------------------------------------------------------------ helpers

    @property
    def model(self):
        """The unwrapped UNet (for rollouts, saving)."""
        return self.acc.unwrap_model(self.unet)

    def _image_shape(self) -> tuple[int, int, int]:
        c = self.model.config
        size = c.sample_size if isinstance(c.sample_size, int) else c.sample_size[0]
        return (c.in_channels, size, size)

    def _decode(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] of final states: the VAE's decoding for a latent pipeline, else the states."""
        return x if self.pipe is None else self.pipe.decode(x, self.cfg.train.sample_batch_size)

    @contextmanager
    def _all_processes(self):
        """Run a block where one process may raise HrfError; afterwards every process raises it or none does."""
        error = None
        try:
            yield
        except HrfError as exc:
            error = exc
        agree_on_errors(self.acc, error)

    def _rewards(self, images: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Rewards of ``images`` and a keep-mask; non-finite rewards raise or are dropped per config."""
        out = self.reward_fn(images)
        raw, info = out if isinstance(out, tuple) else (out, {})
        rewards = validate_rewards(raw, len(images), f"reward '{self.cfg.reward.name}'")
        finite = torch.isfinite(rewards)
        if not bool(finite.all()) and self.cfg.reward.nonfinite == "error":
            raise HrfError(
                f"reward '{self.cfg.reward.name}' returned {int((~finite).sum())} non-finite values "
                f"at epoch {epoch}; fix the reward or set reward.nonfinite='drop'"
            )
        return rewards, finite, info

    # ------------------------------------------------------------ HRF-D probe

    @torch.no_grad()
    def probe(self, refs: torch.Tensor, candidates: list[int], generator: torch.Generator, cond=None):
        """R (n_refs, K) mean reward and D (n_refs, K) mean cosine distance of m probes per candidate.

        R is NaN for a candidate none of whose probes had a finite reward: the schedule leaves it out. The
        probes of a reference share its condition ``cond``; distances are between decoded images.
        """
        m = self.cfg.schedule.probe_samples
        n = len(refs)
        ref_images = self._decode(refs).cpu()
        R, D = np.zeros((n, len(candidates))), np.zeros((n, len(candidates)))
        for j, k in enumerate(candidates):
            with self.acc.autocast():
                images = branch_images(
                    self.model,
                    self.ddim,
                    refs,
                    k,
                    m,
                    generator,
                    self.cfg.train.sample_batch_size,
                    self.cfg.sampling.eta,
                    cond=cond,
                    guidance_scale=self.cfg.sampling.guidance_scale,
                ).flatten(0, 1)
            images = self._decode(images)
            rewards, finite, _ = self._rewards(images, self.epoch)
            rewards = torch.where(finite, rewards, torch.nan).view(n, m).numpy()
            some = finite.view(n, m).any(1).numpy()
            R[:, j] = np.nan
            R[some, j] = np.nanmean(rewards[some], axis=1)
            D[:, j] = cosine_distance(images, ref_images.repeat_interleave(m, dim=0)).view(n, m).mean(1).numpy()
        return R, D

    # ------------------------------------------------------------ one epoch

    @torch.no_grad()
    def _rollout_chunks(self, x_start, start, generator, cond=None) -> Trajectory:
        b = self.cfg.train.sample_batch_size
        parts = []
        with self.acc.autocast():
            for i in range(0, len(x_start), b):
                tr = rollout(
                    self.model,
                    self.ddim,
                    x_start[i : i + b],
                    start[i : i + b].to(x_start.device),
                    self.cfg.sampling.eta,
                    generator,
                    cond=None if cond is None else cond[i : i + b],
                    guidance_scale=self.cfg.sampling.guidance_scale,
                )
                parts.append(
                    Trajectory(
                        tr.states.float().cpu(),
                        tr.log_probs.cpu(),
                        tr.trainable.cpu(),
                        tr.timesteps.cpu(),
                        tr.start.cpu(),
                        tr.cond,
                    )
                )
        return Trajectory.cat(parts)

    @torch.no_grad()
    def sample_epoch(self, epoch: int) -> tuple[Trajectory, torch.Tensor, torch.Tensor, int]:
        """Algorithm 1–2's sampling half: references, start steps, branched rollouts (this process's share).

        Returns the trajectories, each one's group (its reference, numbered across processes), the start step
        of each reference, and how many (reference, candidate) probes HRF-D left out for lack of a finite reward.
        A conditional model draws one prompt per reference from its own stream; the branches share it.
        """
        cfg, acc = self.cfg, self.acc
        gen = epoch_generator(cfg.train.seed, epoch, acc.process_index, _SAMPLING, acc.device)
        n_refs = cfg.train.references // acc.num_processes
        self.model.eval()
        ref_cond = None
        if self.conditioner is not None:
            prompt_gen = epoch_generator(cfg.train.seed, epoch, acc.process_index, _PROMPTS)
            ref_cond = self.conditioner(draw_prompts(n_refs, len(self.conditioner), prompt_gen))
        refs = None
        if self.schedule.needs_references:
            refs = sample_images(
                self.model,
                self.ddim,
                n_refs,
                gen,
                cfg.train.sample_batch_size,
                cfg.sampling.eta,
                cond=ref_cond,
                guidance_scale=cfg.sampling.guidance_scale,
            ).to(acc.device)
        probed: list[np.ndarray] = []

        def probe(candidates):
            R, D = self.probe(refs, candidates, gen, ref_cond)
            probed.append(R)
            return R, D

        starts = self.schedule.starts(epoch, n_refs, gen, probe=probe).cpu()
        ref_index = torch.arange(n_refs).repeat_interleave(cfg.train.branches)
        start = starts[ref_index]
        shape = (len(start), *self._image_shape())
        x0 = refs[ref_index.to(acc.device)] if refs is not None else None
        xs = start_states(x0, start.to(acc.device), self.ddim, shape, gen, acc.device)
        traj = self._rollout_chunks(xs, start, gen, None if ref_cond is None else ref_cond[ref_index])
        groups = ref_index + acc.process_index * n_refs
        self.model.train()
        return traj, groups, starts, sum(int(np.isnan(R).sum()) for R in probed)

    def _gather_rewards(
        self, rewards: torch.Tensor, groups: torch.Tensor, prompts: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """This process's advantages, over the rewards of all processes (groups never straddle processes), and
        the rewards and prompts of all processes (prompts None for an unconditional model)."""
        from accelerate.utils import gather_object

        plist = prompts.tolist() if prompts is not None else []
        parts = gather_object([(self.acc.process_index, rewards.tolist(), groups.tolist(), plist)])
        parts = sorted(parts, key=lambda p: p[0])
        all_r = torch.tensor([r for p in parts for r in p[1]])
        all_g = torch.tensor([g for p in parts for g in p[2]], dtype=torch.long)
        all_p = torch.tensor([q for p in parts for q in p[3]], dtype=torch.long) if prompts is not None else None
        t = self.cfg.train
        groups = None if t.advantage_norm == "batch" else all_g
        if t.loss == "rtb":
            adv = all_r  # RTB weighs each trajectory by its residual, computed per update from the reward
        elif t.kl_beta:
            adv = t.kl_beta * leave_one_out_centred(all_r, groups)
        elif self.stat_tracker is not None and all_p is not None:
            # mode "prompt": every process updates the same statistics with the same gathered rewards
            adv = self.stat_tracker.update(all_p, all_r).clamp(-t.adv_clip, t.adv_clip).float()
        else:
            adv = compute_advantages(all_r, groups, t.adv_clip, group_scale=t.advantage_norm == "group_std")
        offset = sum(len(p[1]) for p in parts if p[0] < self.acc.process_index)
        return adv[offset : offset + len(rewards)], all_r, all_p

    def _pair_loss(self, traj: Trajectory, adv: torch.Tensor, rows: torch.Tensor, steps: torch.Tensor):
        """PPO loss (+ optional KL to base), or RTB's surrogate, of a micro-batch of (trajectory, step) pairs.

        ``adv`` is per trajectory (N,) or per pair (N, T); for RTB it holds each trajectory's residual δ.
        """
        dev = self.acc.device
        x = traj.states[rows, steps].to(dev)
        nxt = traj.states[rows, steps + 1].to(dev)
        t = traj.timesteps[steps].to(dev)
        cond, w = None if traj.cond is None else traj.cond[rows], self.cfg.sampling.guidance_scale
        with self.acc.autocast():
            eps = predict_noise(self.unet, x, t, cond, w)
        _, log_prob, mean = ddim_step_with_logprob(
            self.ddim, eps.float(), t, x, self.cfg.sampling.eta, prev_sample=nxt, return_mean=True
        )
        weight = (adv[rows, steps] if adv.ndim == 2 else adv[rows]).to(dev)
        if self.cfg.train.loss == "rtb":
            return rtb_surrogate(log_prob, weight), {}
        loss, info = ppo_clip_loss(log_prob, traj.log_probs[rows, steps].to(dev), weight, self.cfg.train.clip_range)
        if self.base is not None:
            with torch.no_grad(), self.acc.autocast():
                eps_base = predict_noise(self.base, x, t, cond, w)
            _, _, mean_base = ddim_step_with_logprob(
                self.ddim, eps_base.float(), t, x, self.cfg.sampling.eta, prev_sample=nxt, return_mean=True
            )
            kl = gaussian_step_kl(mean, mean_base, step_sigmas(self.ddim, t, self.cfg.sampling.eta))
            loss = loss + kl_weight(self.cfg.train.kl_coef, self.cfg.train.kl_beta) * kl.mean()
            info["kl_to_base"] = kl.mean().detach()
        return loss, info

    def _update(
        self,
        epoch: int,
        traj: Trajectory,
        adv: torch.Tensor,
        rows: torch.Tensor,
        steps: torch.Tensor,
        total: int,
        stats: dict[str, list[float]],
    ) -> bool:
        """One optimizer update over ``rows, steps`` in micro-batches; False if a GradScaler overflow skipped it.

        Each micro-batch's loss is weighted by its share of the ``total`` pairs of this update over all
        processes. Only the last backward synchronises gradients, so the processes vote on errors just before it.
        """
        world = self.acc.num_processes
        cfg, acc = self.cfg, self.acc
        micro = torch.arange(len(rows)).split(cfg.train.train_batch_size)
        last = None
        with self._all_processes():
            for i, mb in enumerate(micro):
                loss, info = self._pair_loss(traj, adv, rows[mb], steps[mb])
                if not torch.isfinite(loss):
                    raise HrfError(
                        f"non-finite loss at epoch {epoch}; the last good checkpoint is kept. "
                        "Lower train.lr or check the reward"
                    )
                stats["loss"].append(loss.item())
                for key, value in info.items():
                    stats.setdefault(key, []).append(float(value))
                if i < len(micro) - 1:
                    with acc.no_sync(self.unet):
                        acc.backward(loss * (len(mb) * world / total))
                else:
                    last = loss * (len(mb) * world / total)
        acc.backward(last)
        grad_norm = acc.clip_grad_norm_(self.params, cfg.train.grad_clip)
        finite = bool(torch.isfinite(torch.as_tensor(grad_norm)))
        if not finite and acc.scaler is None:  # with a GradScaler, an overflow is its business: the step skips
            raise HrfError(
                f"non-finite gradient at epoch {epoch}; the last good checkpoint is kept. "
                "Lower train.lr, or use mixed_precision='no'"
            )
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if acc.optimizer_step_was_skipped:
            return False
        stats["grad_norm"].append(float(grad_norm))
        self.lr_sched.step()
        return True

    @torch.no_grad()
    def _log_probs(self, model, traj: Trajectory, mask: torch.Tensor) -> torch.Tensor:
        """(N, T) per-dimension log-probabilities under ``model`` of the sampled transitions at ``mask`` (else 0),
        each step under its trajectory's condition and guidance, as the policy sampled it."""
        dev, out = self.acc.device, torch.zeros(mask.shape)
        rows, steps = mask.nonzero(as_tuple=True)
        for mb in torch.arange(len(rows)).split(self.cfg.train.train_batch_size):
            r, s = rows[mb], steps[mb]
            x, t = traj.states[r, s].to(dev), traj.timesteps[s].to(dev)
            cond = None if traj.cond is None else traj.cond[r]
            with self.acc.autocast():
                eps = predict_noise(model, x, t, cond, self.cfg.sampling.guidance_scale)
            _, lp = ddim_step_with_logprob(
                self.ddim, eps.float(), t, x, self.cfg.sampling.eta, prev_sample=traj.states[r, s + 1].to(dev)
            )
            out[r, s] = lp.float().cpu()
        return out

    def _process_mean(self, value: torch.Tensor) -> torch.Tensor:
        """A scalar averaged over processes (every process must call it at the same point)."""
        if self.acc.num_processes == 1:
            return value
        return self.acc.reduce(value.float().to(self.acc.device), reduction="mean").double().cpu()

    def _targets(self, traj: Trajectory, adv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The loss's per-trajectory or per-pair weights, and the base model's log-probabilities (or None).

        With ``train.kl_beta``, the trained steps are read once per epoch: KL-regularised PPO adds the later
        steps' closed-form KL to each pair's advantage; RTB keeps the base model's log-probabilities for δ.
        """
        t = self.cfg.train
        if not t.kl_beta:
            return adv, None
        mask = trained_mask(traj.trainable, t.skip_last_steps)
        if t.loss == "rtb":
            return adv, self._log_probs(self.base, traj, mask)
        dim = math.prod(self._image_shape())
        return kl_beta_advantages(adv, dim * self._step_kls(traj, mask), mask).float(), None

    def _step_kls(self, traj: Trajectory, mask: torch.Tensor) -> torch.Tensor:
        """(N, T) per-dimension closed-form KL(p_θ ‖ p_base) of each step at ``mask``'s sampled states (else 0).

        Read before the epoch's first update, so p_θ is the policy that sampled: each step's KL is the
        conditional mean of its sampled log-ratio given the state, which stands in for it in the KL still to
        pay (docs/MATH.md §11) without the log-ratio's noise."""
        dev, out = self.acc.device, torch.zeros(mask.shape)
        rows, steps = mask.nonzero(as_tuple=True)
        for mb in torch.arange(len(rows)).split(self.cfg.train.train_batch_size):
            r, s = rows[mb], steps[mb]
            x, t = traj.states[r, s].to(dev), traj.timesteps[s].to(dev)
            cond, nxt = None if traj.cond is None else traj.cond[r], traj.states[r, s + 1].to(dev)
            means = []
            for model in (self.model, self.base):
                with torch.no_grad(), self.acc.autocast():
                    eps = predict_noise(model, x, t, cond, self.cfg.sampling.guidance_scale)
                step = ddim_step_with_logprob(
                    self.ddim, eps.float(), t, x, self.cfg.sampling.eta, prev_sample=nxt, return_mean=True
                )
                means.append(step[2])
            sigma = step_sigmas(self.ddim, t, self.cfg.sampling.eta)
            out[r, s] = gaussian_step_kl(means[0], means[1], sigma).float().cpu()
        return out

    def _rtb_residuals(
        self, traj: Trajectory, rewards: torch.Tensor, base_lp: torch.Tensor, ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """δ of trajectories ``ids`` under the current parameters (no grad): as an (N,) weight tensor (0 elsewhere)
        and alone. At the run's first update log Z is set to the value that zeroes their mean residual."""
        t = self.cfg.train
        mask = trained_mask(traj.trainable, t.skip_last_steps)
        sub = torch.zeros_like(mask)
        sub[ids] = mask[ids]
        dim = math.prod(self._image_shape())
        log_ratio = dim * (self._log_probs(self.model, traj, sub)[ids] - base_lp[ids])
        if not self.log_z_set:
            with torch.no_grad():
                self.log_z.copy_(self._process_mean(initial_log_z(log_ratio, mask[ids], rewards[ids], t.kl_beta)))
            self.log_z_set = True
        delta = rtb_residual(self.log_z.detach(), log_ratio, mask[ids], rewards[ids], t.kl_beta)
        weights = torch.zeros(len(traj), dtype=torch.float64)
        weights[ids] = delta
        return weights.float(), delta

    def _step_log_z(self, delta: torch.Tensor) -> None:
        """One Adam step of log Z on the mean δ² of the update's trajectories (over all processes)."""
        self.log_z_opt.zero_grad(set_to_none=True)
        self.log_z.grad = self._process_mean(rtb_log_z_grad(delta)).reshape(())
        self.log_z_opt.step()

    def train_epoch(self, epoch: int, traj: Trajectory, adv: torch.Tensor) -> dict:
        """Updates on the trained pairs, ``updates_per_epoch`` optimizer steps per inner epoch.

        The ``timestep_fraction`` subset of each trajectory's steps is drawn anew for every inner epoch, as DDPO.
        With ``train.loss = "rtb"``, ``adv`` holds the rewards and each update takes whole trajectories.
        """
        cfg, acc = self.cfg, self.acc
        from accelerate.utils import gather_object

        gen = epoch_generator(cfg.train.seed, epoch, acc.process_index, _TRAINING)
        U = cfg.train.updates_per_epoch
        rtb = cfg.train.loss == "rtb"
        stats: dict[str, list[float]] = {"loss": [], "approx_kl": [], "clipfrac": [], "grad_norm": []}
        world = acc.num_processes
        updates = skipped = 0
        weights, base_lp = self._targets(traj, adv)
        for _ in range(cfg.train.inner_epochs):
            with self._all_processes():
                rows, steps = trainable_pairs(
                    traj.trainable, cfg.train.timestep_fraction, gen, cfg.train.skip_last_steps
                )
                n, unit = (len(rows.unique()), "trajectories") if rtb else (len(rows), "trained steps")
                if n < U:
                    raise HrfError(
                        f"only {n} {unit} on process {acc.process_index} for {U} updates; lower train.updates_per_epoch"
                    )
            if rtb:
                chunks = trajectory_chunks(rows, U, gen)
            else:
                chunks = list(torch.tensor_split(torch.randperm(len(rows), generator=gen, device=gen.device), U))
            local = [len(c) for c in chunks]
            # each micro-batch's loss is weighted by its share of the update's pairs over all processes
            totals = [sum(col) for col in zip(*gather_object([local]), strict=True)] if world > 1 else local
            for u, chunk in enumerate(chunks):
                if rtb:
                    weights, delta = self._rtb_residuals(traj, adv, base_lp, rows[chunk].unique())
                    stats.setdefault("rtb_residual_rms", []).append(float(delta.pow(2).mean().sqrt()))
                if self._update(epoch, traj, weights, rows[chunk], steps[chunk], totals[u], stats):
                    updates += 1
                    if rtb:
                        self._step_log_z(delta)
                else:
                    skipped += 1
        out = {k: float(np.mean(v)) for k, v in stats.items() if v}
        if rtb:
            out["log_z"] = self.log_z.item()
        out["trained_pairs"] = int(sum(gather_object([int(len(rows))]))) if world > 1 else int(len(rows))
        out["optimizer_updates"] = updates
        if acc.scaler is not None:
            out["skipped_updates"] = skipped
            out["grad_scale"] = float(acc.scaler.get_scale())
        out["lr"] = float(self.lr_sched.get_last_lr()[0])
        return out

    def _run_epoch(self, epoch: int) -> tuple[dict, torch.Tensor]:
        """Sample, reward, train one epoch; returns its metrics and this process's final images."""
        times = {}
        t0 = time.perf_counter()
        with self._all_processes():
            traj, groups, starts, excluded = self.sample_epoch(epoch)
            times["seconds_sampling"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            images = self._decode(traj.images)
            rewards, finite, info = self._rewards(images, epoch)
            times["seconds_reward"] = time.perf_counter() - t0
        dropped = int((~finite).sum())
        if dropped:
            keep = finite.nonzero().squeeze(1)
            traj, images = traj.select(keep), images[keep]
            rewards, groups = rewards[keep], groups[keep]
        adv, all_r, all_p = self._gather_rewards(rewards, groups, None if traj.cond is None else traj.cond.prompt)
        t0 = time.perf_counter()
        train_stats = self.train_epoch(epoch, traj, adv)
        times["seconds_training"] = time.perf_counter() - t0
        hist = {int(k): int(v) for k, v in zip(*np.unique(starts.numpy(), return_counts=True), strict=True)}
        metrics = {
            "epoch": epoch + 1,
            "schedule": self.schedule.describe(epoch),
            "trajectories": int(len(all_r)),
            "reward_mean": float(all_r.mean()),
            "reward_std": float(all_r.std(unbiased=False)),
            "reward_min": float(all_r.min()),
            "reward_max": float(all_r.max()),
            "nonfinite_dropped": dropped,
            "start_step_histogram": hist,
            **train_stats,
            **{k: round(v, 3) for k, v in times.items()},
        }
        if self.cfg.schedule.kind == "dynamic":
            metrics["probe_candidates_excluded"] = excluded
        if all_p is not None:
            names = self.conditioner.names
            metrics["reward_by_prompt"] = {names[int(q)]: float(all_r[all_p == q].mean()) for q in all_p.unique()}
        for key, value in info.items():
            arr = np.asarray(value, dtype=np.float64) if np.ndim(value) else None
            if arr is not None and arr.shape == (len(finite),):
                metrics[f"reward_info/{key}_mean"] = float(np.nanmean(arr))
        return metrics, images

    def run_epoch(self, epoch: int) -> dict:
        """Sample, reward, train one epoch; returns its metrics."""
        return self._run_epoch(epoch)[0]

    # ------------------------------------------------------------ the run

    def state_dict(self) -> dict:
        state = {
            "epoch": self.epoch,
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_sched.state_dict(),
            "schedule": self.schedule.state_dict(),
        }
        if self.acc.scaler is not None:
            state["grad_scaler"] = self.acc.scaler.state_dict()
        if self.cfg.train.loss == "rtb":
            state["log_z"] = self.log_z.detach().clone()
            state["log_z_set"] = self.log_z_set
            state["log_z_optimizer"] = self.log_z_opt.state_dict()
        if self.cfg.model.lora_rank:
            from hrf.models.lora import lora_state_dict

            state["lora"] = lora_state_dict(self.model)  # the model dir holds merged weights
        if self.stat_tracker is not None:
            state["prompt_stats"] = self.stat_tracker.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.epoch = self.checkpointed_epoch = int(state["epoch"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_sched.load_state_dict(state["lr_scheduler"])
        self.schedule.load_state_dict(state["schedule"])
        if self.acc.scaler is not None and "grad_scaler" in state:
            self.acc.scaler.load_state_dict(state["grad_scaler"])
        if self.stat_tracker is not None and "prompt_stats" in state:
            self.stat_tracker.load_state_dict(state["prompt_stats"])
        if "log_z" in state:
            with torch.no_grad():
                self.log_z.copy_(state["log_z"])
            self.log_z_set = bool(state["log_z_set"])
            self.log_z_opt.load_state_dict(state["log_z_optimizer"])
            for group in self.log_z_opt.param_groups:  # a changed rtb_logz_lr takes effect on resume
                group["lr"] = self.cfg.train.rtb_logz_lr

    def resume_from(self, checkpoint: Path) -> None:
        """Load weights and trainer state from a checkpoint directory."""
        from diffusers import UNet2DModel

        from hrf.models.lora import load_lora_state

        state = load_checkpoint_state(checkpoint)
        if "lora" in state:  # frozen base from model.path, adapters from the checkpoint
            load_lora_state(self.model, state["lora"], checkpoint)
        else:
            try:
                weights = UNet2DModel.from_pretrained(checkpoint / "model").state_dict()
            except (OSError, ValueError) as exc:  # an empty, truncated or binary file in the model directory
                raise HrfError(
                    f"checkpoint '{checkpoint}' has an unreadable model ({str(exc).strip().splitlines()[0]}); "
                    "delete it to resume from the one before"
                ) from exc
            self.model.load_state_dict(weights)
        self.load_state_dict(state)

    def _save_model(self, unet, scheduler, directory: Path, extra: dict | None = None) -> None:
        """A diffusers model directory; for a latent pipeline, its LoRA adapters (``load_lora_weights`` opens them)."""
        if self.pipe is not None:
            save_lora(unet, directory, self.cfg.model.path, extra)
        else:
            from hrf.models import save_model

            save_model(unet, scheduler, directory, extra=extra)

    def _write_metrics(self, metrics: dict) -> None:
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(metrics) + "\n")
        self.acc.log(scalars(metrics), step=metrics["epoch"])

    def _checkpoint(self) -> None:
        self.checkpointed_epoch = self.epoch
        if self.acc.is_main_process:
            save_checkpoint(
                self.run_dir,
                self.epoch,
                self.model,
                self.train_scheduler,
                self.state_dict(),
                self.cfg.output.keep_checkpoints,
                save=self._save_model,
            )
        self.acc.wait_for_everyone()

    def train(self) -> list[dict]:
        """Run epochs until max_epochs, the schedule's end or the target reward; checkpoint as configured."""
        cfg, out = self.cfg, self.cfg.output
        history = []
        bar = tqdm(
            total=cfg.train.max_epochs, initial=self.epoch, desc="epochs", disable=not self.progress, unit="epoch"
        )
        while self.epoch < cfg.train.max_epochs:
            if self.schedule.finished(self.epoch):
                self.stopped_reason = "schedule finished"
                break
            metrics, images = self._run_epoch(self.epoch)
            self.epoch += 1
            history.append(metrics)
            if self.acc.is_main_process:
                self._write_metrics(metrics)
                if out.grid_every and self.epoch % out.grid_every == 0:
                    from hrf.images import save_grid

                    (self.run_dir / "samples").mkdir(exist_ok=True)
                    save_grid(
                        images[:64],
                        self.run_dir / "samples" / f"epoch_{self.epoch:04d}.png",
                        scale=max(1, 64 // images.shape[-1]),
                    )
            bar.update(1)
            bar.set_postfix(
                reward=f"{metrics['reward_mean']:.4g}", loss=f"{metrics['loss']:.3g}", sched=metrics["schedule"]
            )
            target = cfg.train.target_reward
            reached = target is not None and metrics["reward_mean"] >= target
            if self.epoch % out.checkpoint_every == 0:
                self._checkpoint()
            if reached:
                self.stopped_reason = f"target reward {target} reached"
                break
        bar.close()
        self.stopped_reason = self.stopped_reason or "max_epochs reached"
        if self.checkpointed_epoch != self.epoch:  # the last epoch, once, whatever checkpoint_every says
            self._checkpoint()
        if self.acc.is_main_process:
            self._save_model(
                self.model,
                self.train_scheduler,
                self.run_dir / "final",
                extra={"epochs": self.epoch, "stopped": self.stopped_reason, "config": "../config.toml"},
            )
        self.acc.wait_for_everyone()
        return history
