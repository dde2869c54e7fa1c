"""One trainer for DDPO_IS, HRF and HRF-D (paper Algorithms 1–2): they differ only in the start schedule.

An epoch: the current model generates reference images; the schedule gives each reference a start step
k; ``branches`` trajectories are rolled out from the reference noised to k; rewards; advantages; the
PPO-clipped loss on exactly the steps after each start, accumulated into ``updates_per_epoch`` optimizer
steps. The math lives in ``hrf.sampling`` and ``hrf.training.loss``; this module only composes it.
"""

from __future__ import annotations

import copy
import json
import math
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from hrf.config import Config, config_diff, derived_quantities, load_config, save_config
from hrf.errors import HrfError
from hrf.models import load_scheduler, load_unet, make_ddim_scheduler
from hrf.rewards import make_reward, validate_rewards
from hrf.sampling import (
    Trajectory,
    ddim_step_with_logprob,
    gaussian_step_kl,
    rollout,
    sample_images,
    start_states,
    step_sigmas,
)
from hrf.training.checkpoint import checkpoint_dirs, load_checkpoint_state, save_checkpoint
from hrf.training.loss import compute_advantages, ppo_clip_loss
from hrf.training.schedule import make_schedule
from hrf.training.trackers import PROJECT, scalars, tracker_kwargs

# Purposes of the per-epoch random streams, so that drawing more in one never shifts another.
_SAMPLING, _TRAINING = 0, 1


def epoch_generator(seed: int, epoch: int, rank: int, purpose: int, device="cpu") -> torch.Generator:
    """A generator that depends only on (run seed, epoch, rank, purpose): resume needs no RNG state."""
    state = np.random.SeedSequence([seed, epoch, rank, purpose]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator(device).manual_seed(int(state) & ((1 << 63) - 1))


def trainable_pairs(trainable: torch.Tensor, fraction: float, generator: torch.Generator, skip_last: int = 0):
    """(row, step) pairs to train: each trajectory's trainable steps, a random ``fraction`` of them kept.

    ``skip_last`` drops step indices T−1−skip_last..T−2, the last stochastic steps before the deterministic
    one: their σ is tiny (faces32 at T = 10: 0.01 at t = 100 → 0, against 0.29 a step earlier), so their
    score (x−μ)/σ² = z/σ makes their gradient mostly noise, for moves of about one grey level.
    """
    if skip_last:
        last = trainable.shape[1] - 1 - skip_last
        trainable = trainable & (torch.arange(trainable.shape[1], device=trainable.device) < last)
    rows, steps = trainable.nonzero(as_tuple=True)
    if fraction >= 1.0:
        return rows, steps
    keep = torch.zeros(len(rows), dtype=torch.bool)
    for r in rows.unique():
        idx = (rows == r).nonzero().squeeze(1)
        n = max(1, math.ceil(len(idx) * fraction))
        keep[idx[torch.randperm(len(idx), generator=generator)[:n]]] = True
    return rows[keep], steps[keep]


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 − cos between flattened images, row by row."""
    return 1.0 - torch.nn.functional.cosine_similarity(a.flatten(1).double(), b.flatten(1).double(), dim=1)


class Trainer:
    """Composes model, schedule, rollout, reward, loss and checkpoints into a resumable run."""

    def __init__(self, cfg: Config, run_dir: str | Path, *, unet=None, train_scheduler=None, reward_fn=None,
                 accelerator=None, progress: bool = True):
        from accelerate import Accelerator

        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.acc = accelerator or Accelerator(mixed_precision=cfg.model.mixed_precision,
                                              cpu=not torch.cuda.is_available(),
                                              **tracker_kwargs(cfg.output.trackers, self.run_dir))
        if cfg.output.trackers:
            self.acc.init_trackers(PROJECT)
        self.progress = progress and self.acc.is_main_process
        self.derived = derived_quantities(cfg, self.acc.num_processes)
        unet = unet if unet is not None else load_unet(cfg.model.path)
        self.train_scheduler = train_scheduler if train_scheduler is not None else load_scheduler(cfg.model.path)
        self.ddim = make_ddim_scheduler(self.train_scheduler, cfg.sampling.num_steps)
        self.base = copy.deepcopy(unet).requires_grad_(False).eval().to(self.acc.device) if cfg.train.kl_coef else None
        if cfg.model.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
        if cfg.model.lora_rank:
            from hrf.models.lora import add_lora

            unet = add_lora(unet, cfg.model.lora_rank)
        unet.train()
        params = [p for p in unet.parameters() if p.requires_grad]
        t = cfg.train
        optimizer = torch.optim.AdamW(params, lr=t.lr, betas=tuple(t.adam_betas), eps=t.adam_eps,
                                      weight_decay=t.weight_decay)
        warmup = t.warmup_epochs * t.updates_per_epoch * t.inner_epochs
        lr_sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)
        self.unet, self.optimizer, self.lr_sched = self.acc.prepare(unet, optimizer, lr_sched)
        self.params = params
        self.reward_fn = reward_fn if reward_fn is not None else make_reward(cfg.reward.name, **cfg.reward.options)
        self.schedule = make_schedule(cfg.schedule)
        self.epoch = 0
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

    def _rewards(self, images: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Rewards of ``images`` and a keep-mask; non-finite rewards raise or are dropped per config."""
        out = self.reward_fn(images)
        raw, info = (out if isinstance(out, tuple) else (out, {}))
        rewards = validate_rewards(raw, len(images), f"reward '{self.cfg.reward.name}'")
        finite = torch.isfinite(rewards)
        if not bool(finite.all()) and self.cfg.reward.nonfinite == "error":
            raise HrfError(f"reward '{self.cfg.reward.name}' returned {int((~finite).sum())} non-finite values "
                           f"at epoch {epoch}; fix the reward or set reward.nonfinite='drop'")
        return rewards, finite, info

    # ------------------------------------------------------------ HRF-D probe

    @torch.no_grad()
    def probe(self, refs: torch.Tensor, candidates: list[int], generator: torch.Generator):
        """R (n_refs, K) mean reward and D (n_refs, K) mean cosine distance of m probes per candidate."""
        m = self.cfg.schedule.probe_samples
        n = len(refs)
        R, D = np.zeros((n, len(candidates))), np.zeros((n, len(candidates)))
        for j, k in enumerate(candidates):
            x0 = refs.repeat_interleave(m, dim=0)
            start = torch.full((len(x0),), k, dtype=torch.long)
            xs = start_states(x0, start, self.ddim, tuple(x0.shape), generator, x0.device)
            images = self._rollout_chunks(xs, start, generator).images.float().cpu()
            rewards, finite, _ = self._rewards(images, self.epoch)
            rewards = torch.where(finite, rewards, torch.nan)
            dist = cosine_distance(images, x0.cpu())
            R[:, j] = np.nanmean(rewards.view(n, m).numpy(), axis=1)
            D[:, j] = dist.view(n, m).mean(1).numpy()
        return np.nan_to_num(R), D

    # ------------------------------------------------------------ one epoch

    @torch.no_grad()
    def _rollout_chunks(self, x_start, start, generator) -> Trajectory:
        b = self.cfg.train.sample_batch_size
        parts = []
        with self.acc.autocast():
            for i in range(0, len(x_start), b):
                tr = rollout(self.model, self.ddim, x_start[i:i + b], start[i:i + b].to(x_start.device),
                             self.cfg.sampling.eta, generator)
                parts.append(Trajectory(tr.states.float().cpu(), tr.log_probs.cpu(), tr.trainable.cpu(),
                                        tr.timesteps.cpu(), tr.start.cpu()))
        return Trajectory.cat(parts)

    @torch.no_grad()
    def sample_epoch(self, epoch: int):
        """Algorithm 1–2's sampling half: references, start steps, branched rollouts (this process's share)."""
        cfg, acc = self.cfg, self.acc
        gen = epoch_generator(cfg.train.seed, epoch, acc.process_index, _SAMPLING, acc.device)
        n_refs = cfg.train.references // acc.num_processes
        self.model.eval()
        refs = None
        if self.schedule.needs_references:
            refs = sample_images(self.model, self.ddim, n_refs, gen, cfg.train.sample_batch_size,
                                 cfg.sampling.eta).to(acc.device)
        starts = self.schedule.starts(epoch, n_refs, gen, probe=lambda c: self.probe(refs, c, gen))
        ref_index = torch.arange(n_refs).repeat_interleave(cfg.train.branches)
        start = starts[ref_index]
        shape = (len(start), *self._image_shape())
        x0 = refs[ref_index.to(acc.device)] if refs is not None else None
        xs = start_states(x0, start.to(acc.device), self.ddim, shape, gen, acc.device)
        traj = self._rollout_chunks(xs, start, gen)
        groups = ref_index + acc.process_index * n_refs
        self.model.train()
        return traj, groups, starts

    def _gather_advantages(self, rewards: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """Advantages over the rewards of all processes (groups never straddle processes)."""
        from accelerate.utils import gather_object

        parts = gather_object([(self.acc.process_index, rewards.tolist(), groups.tolist())])
        parts = sorted(parts, key=lambda p: p[0])
        all_r = torch.tensor([r for p in parts for r in p[1]])
        all_g = torch.tensor([g for p in parts for g in p[2]], dtype=torch.long)
        mode = self.cfg.train.advantage_norm
        adv = compute_advantages(all_r, None if mode == "batch" else all_g, self.cfg.train.adv_clip,
                                 group_scale=mode == "group_std")
        offset = sum(len(p[1]) for p in parts if p[0] < self.acc.process_index)
        self._all_rewards = all_r
        return adv[offset:offset + len(rewards)]

    def _pair_loss(self, traj: Trajectory, adv: torch.Tensor, rows: torch.Tensor, steps: torch.Tensor):
        """PPO loss (+ optional KL to base) of a micro-batch of (trajectory, step) pairs."""
        dev = self.acc.device
        x = traj.states[rows, steps].to(dev)
        nxt = traj.states[rows, steps + 1].to(dev)
        t = traj.timesteps[steps].to(dev)
        with self.acc.autocast():
            eps = self.unet(x, t).sample
        _, log_prob, mean = ddim_step_with_logprob(self.ddim, eps.float(), t, x, self.cfg.sampling.eta,
                                                   prev_sample=nxt, return_mean=True)
        loss, info = ppo_clip_loss(log_prob, traj.log_probs[rows, steps].to(dev), adv[rows].to(dev),
                                   self.cfg.train.clip_range)
        if self.base is not None:
            with torch.no_grad(), self.acc.autocast():
                eps_base = self.base(x, t).sample
            _, _, mean_base = ddim_step_with_logprob(self.ddim, eps_base.float(), t, x, self.cfg.sampling.eta,
                                                     prev_sample=nxt, return_mean=True)
            kl = gaussian_step_kl(mean, mean_base, step_sigmas(self.ddim, t, self.cfg.sampling.eta))
            loss = loss + self.cfg.train.kl_coef * kl.mean()
            info["kl_to_base"] = kl.mean().detach()
        return loss, info

    def train_epoch(self, epoch: int, traj: Trajectory, adv: torch.Tensor) -> dict:
        """PPO updates on the trained pairs, ``updates_per_epoch`` optimizer steps per inner epoch."""
        cfg, acc = self.cfg, self.acc
        from accelerate.utils import gather_object

        gen = epoch_generator(cfg.train.seed, epoch, acc.process_index, _TRAINING)
        rows, steps = trainable_pairs(traj.trainable, cfg.train.timestep_fraction, gen, cfg.train.skip_last_steps)
        U = cfg.train.updates_per_epoch
        if len(rows) < U:
            raise HrfError(f"only {len(rows)} trained steps on process {acc.process_index} for {U} updates; "
                           "lower train.updates_per_epoch")
        stats: dict[str, list[float]] = {"loss": [], "approx_kl": [], "clipfrac": [], "grad_norm": []}
        world = acc.num_processes
        updates = 0
        for _ in range(cfg.train.inner_epochs):
            perm = torch.randperm(len(rows), generator=gen)
            chunks = torch.tensor_split(perm, U)
            local = [len(c) for c in chunks]
            # each micro-batch's loss is weighted by its share of the update's pairs over all processes
            totals = [sum(col) for col in zip(*gather_object([local]), strict=True)] if world > 1 else local
            for u, chunk in enumerate(chunks):
                micro = chunk.split(cfg.train.train_batch_size)
                for i, mb in enumerate(micro):
                    ctx = nullcontext() if i == len(micro) - 1 else acc.no_sync(self.unet)
                    with ctx:
                        loss, info = self._pair_loss(traj, adv, rows[mb], steps[mb])
                        if not torch.isfinite(loss):
                            raise HrfError(f"non-finite loss at epoch {epoch}; the last good checkpoint is kept. "
                                           "Lower train.lr or check the reward")
                        acc.backward(loss * (len(mb) * world / totals[u]))
                    stats["loss"].append(loss.item())
                    stats["approx_kl"].append(float(info["approx_kl"]))
                    stats["clipfrac"].append(float(info["clipfrac"]))
                    if "kl_to_base" in info:
                        stats.setdefault("kl_to_base", []).append(float(info["kl_to_base"]))
                grad_norm = acc.clip_grad_norm_(self.params, cfg.train.grad_clip)
                if not torch.isfinite(torch.as_tensor(grad_norm)):
                    raise HrfError(f"non-finite gradient at epoch {epoch}; the last good checkpoint is kept. "
                                   "Lower train.lr, or use mixed_precision='no'")
                stats["grad_norm"].append(float(grad_norm))
                updates += 1
                self.optimizer.step()
                self.lr_sched.step()
                self.optimizer.zero_grad(set_to_none=True)
        out = {k: float(np.mean(v)) for k, v in stats.items() if v}
        out["trained_pairs"] = int(sum(gather_object([int(len(rows))]))) if world > 1 else int(len(rows))
        out["optimizer_updates"] = updates
        out["lr"] = float(self.lr_sched.get_last_lr()[0])
        return out

    def run_epoch(self, epoch: int) -> dict:
        """Sample, reward, train one epoch; returns its metrics."""
        times = {}
        t0 = time.perf_counter()
        traj, groups, starts = self.sample_epoch(epoch)
        times["seconds_sampling"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rewards, finite, info = self._rewards(traj.images, epoch)
        times["seconds_reward"] = time.perf_counter() - t0
        dropped = int((~finite).sum())
        if dropped:
            keep = finite.nonzero().squeeze(1)
            traj = Trajectory(traj.states[keep], traj.log_probs[keep], traj.trainable[keep], traj.timesteps,
                              traj.start[keep])
            rewards, groups = rewards[keep], groups[keep]
        adv = self._gather_advantages(rewards, groups)
        t0 = time.perf_counter()
        train_stats = self.train_epoch(epoch, traj, adv)
        times["seconds_training"] = time.perf_counter() - t0
        all_r = self._all_rewards
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
        for key, value in info.items():
            arr = np.asarray(value, dtype=np.float64) if np.ndim(value) else None
            if arr is not None and arr.shape == (len(finite),):
                metrics[f"reward_info/{key}_mean"] = float(np.nanmean(arr))
        self._last_images = traj.images
        return metrics

    # ------------------------------------------------------------ the run

    def state_dict(self) -> dict:
        state = {"epoch": self.epoch, "optimizer": self.optimizer.state_dict(),
                 "lr_scheduler": self.lr_sched.state_dict(), "schedule": self.schedule.state_dict()}
        if self.cfg.model.lora_rank:
            from hrf.models.lora import lora_state_dict

            state["lora"] = lora_state_dict(self.model)  # the model dir holds merged weights
        return state

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_sched.load_state_dict(state["lr_scheduler"])
        self.schedule.load_state_dict(state["schedule"])

    def resume_from(self, checkpoint: Path) -> None:
        """Load weights and trainer state from a checkpoint directory."""
        from diffusers import UNet2DModel

        state = load_checkpoint_state(checkpoint)
        if "lora" in state:  # frozen base from model.path, adapters from the checkpoint
            self.model.load_state_dict(state["lora"], strict=False)
        else:
            self.model.load_state_dict(UNet2DModel.from_pretrained(checkpoint / "model").state_dict())
        self.load_state_dict(state)

    def _write_metrics(self, metrics: dict) -> None:
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(metrics) + "\n")
        self.acc.log(scalars(metrics), step=metrics["epoch"])

    def _checkpoint(self) -> None:
        if self.acc.is_main_process:
            save_checkpoint(self.run_dir, self.epoch, self.model, self.train_scheduler, self.state_dict(),
                            self.cfg.output.keep_checkpoints)
        self.acc.wait_for_everyone()

    def train(self) -> list[dict]:
        """Run epochs until max_epochs, the schedule's end or the target reward; checkpoint as configured."""
        cfg, out = self.cfg, self.cfg.output
        history = []
        bar = tqdm(total=cfg.train.max_epochs, initial=self.epoch, desc="epochs", disable=not self.progress,
                   unit="epoch")
        while self.epoch < cfg.train.max_epochs:
            if self.schedule.finished(self.epoch):
                self.stopped_reason = "schedule finished"
                break
            metrics = self.run_epoch(self.epoch)
            self.epoch += 1
            history.append(metrics)
            if self.acc.is_main_process:
                self._write_metrics(metrics)
                if out.grid_every and self.epoch % out.grid_every == 0:
                    from hrf.images import save_grid

                    (self.run_dir / "samples").mkdir(exist_ok=True)
                    save_grid(self._last_images[:64], self.run_dir / "samples" / f"epoch_{self.epoch:04d}.png",
                              scale=max(1, 64 // self._image_shape()[-1]))
            bar.update(1)
            bar.set_postfix(reward=f"{metrics['reward_mean']:.4g}", loss=f"{metrics['loss']:.3g}",
                            sched=metrics["schedule"])
            target = cfg.train.target_reward
            reached = target is not None and metrics["reward_mean"] >= target
            if self.epoch % out.checkpoint_every == 0 or reached or self.epoch == cfg.train.max_epochs:
                self._checkpoint()
            if reached:
                self.stopped_reason = f"target reward {target} reached"
                break
        bar.close()
        self.stopped_reason = self.stopped_reason or "max_epochs reached"
        if self.epoch % out.checkpoint_every:
            self._checkpoint()
        if self.acc.is_main_process:
            from hrf.models import save_model

            save_model(self.model, self.train_scheduler, self.run_dir / "final",
                       extra={"epochs": self.epoch, "stopped": self.stopped_reason, "config": "../config.toml"})
        self.acc.wait_for_everyone()
        return history


# ---------------------------------------------------------------- run directories


def prepare_run(cfg: Config | None, out: str | Path, resume: bool = False, force: bool = False,
                allow_config_change: bool = False, **trainer_kwargs) -> Trainer:
    """Create (or reopen, with ``resume``) a run directory and the trainer for it.

    A directory holding another run is refused unless ``resume`` or ``force``; ``resume`` with a config
    that differs from the saved one is refused (listing the differences) unless ``allow_config_change``.
    """
    from hrf.cli.common import writable_dir

    out = Path(out)
    saved = out / "config.toml"
    if resume:
        if not saved.is_file():
            raise HrfError(f"'{out}' holds no run to resume (no config.toml); start one with --config")
        saved_cfg = load_config(saved)
        if cfg is not None and (diff := config_diff(saved_cfg, cfg)) and not allow_config_change:
            raise HrfError("the config differs from the run's saved one (" + "; ".join(diff) +
                           "); pass --allow-config-change to resume anyway")
        cfg = cfg if cfg is not None and allow_config_change else saved_cfg
        ckpts = checkpoint_dirs(out)
        if not ckpts:
            raise HrfError(f"'{out}' has no complete checkpoint to resume from; start again with --force")
    else:
        if cfg is None:
            raise HrfError("pass --config FILE (or --resume DIR)")
        if saved.exists() and not force:
            raise HrfError(f"'{out}' already holds a run; pass --resume to continue it or --force to overwrite")
        writable_dir(out)
    trainer = Trainer(cfg, out, **trainer_kwargs)
    if trainer.acc.is_main_process:
        if not resume:
            import shutil

            for stale in ("metrics.jsonl", "checkpoints", "final", "samples"):
                p = out / stale
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        save_config(cfg, out / "config.toml")
        (out / "derived.json").write_text(json.dumps(trainer.derived, indent=2))
    if resume:
        ckpt = checkpoint_dirs(out)[-1]
        trainer.resume_from(ckpt)
        if trainer.acc.is_main_process:
            _truncate_metrics(out / "metrics.jsonl", trainer.epoch)
    trainer.acc.wait_for_everyone()
    return trainer


def _truncate_metrics(path: Path, epochs_done: int) -> None:
    """Drop metric lines of epochs after the checkpoint (they will be recomputed identically)."""
    if not path.is_file():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    kept = [ln for ln in lines if json.loads(ln)["epoch"] <= epochs_done]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(ln + "\n" for ln in kept))
    tmp.replace(path)
