"""The training loop: D's phase, G's phase, G's EMA, and the bookkeeping between them.

One readable loop in the manner of stylegan2-ada, on one process or many (torch.distributed).
Every hyper-parameter comes from the recipe's ``train`` section; components are used only
through their interfaces. Under data parallelism each process runs both phases on its share of
the global batch and the gradients are averaged with one all-reduce per phase after the whole
backward pass, the R1/R2 double backward included (as the StyleGAN2-ADA and R3GAN code do; DDP's
reducer hooks do not support ``autograd.grad`` inside the step).
"""

from __future__ import annotations

import copy
import json
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import torch
import yaml
from torch import Tensor, nn
from tqdm import tqdm

from gancore import checkpoint as checkpoints
from gancore.batchnorm import cross_replica, stand
from gancore.build import Parts
from gancore.data import Batches
from gancore.distributed import World, all_reduce_sum_, broadcast, derive_seed, gather, join
from gancore.errors import GancoreError
from gancore.evaluation import Evaluation, append_results
from gancore.images import save_samples
from gancore.interfaces import PenaltyContext
from gancore.precision import LossScale, autocast
from gancore.recipe import OptimizerConfig, Recipe
from gancore.scalars import ScalarLog


class TrainingStopped(GancoreError):
    """The run stopped itself: too many non-finite steps in a row."""


def _adam(network: nn.Module, cfg: OptimizerConfig) -> torch.optim.Adam:
    return torch.optim.Adam(network.parameters(), lr=cfg.lr(0), betas=(cfg.beta1, cfg.beta2(0)), eps=cfg.eps)


class Trainer:
    """Runs one recipe on this process's share of the batch; rank 0 writes everything under ``out_dir``."""

    def __init__(self, recipe: Recipe, parts: Parts, out_dir: Path, raw_recipe: dict | None = None,
                 world: World | None = None) -> None:
        self.recipe, self.parts, self.out_dir = recipe, parts, out_dir
        self.cfg = cfg = recipe.train
        self.world = world or join(cfg.device)
        self.device = self.world.device
        if cfg.batch_size % self.world.size:
            raise GancoreError(f"train.batch_size = {cfg.batch_size} cannot be split evenly over "
                               f"{self.world.size} processes; use a multiple of {self.world.size}")
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = cfg.allow_tf32
        self.G = parts.generator.to(self.device).train()
        self.D = parts.discriminator.to(self.device).train()
        if self.world.distributed:
            self.G = cross_replica(self.G) if self.G.cross_replica_batchnorm else self.G
            self.D = cross_replica(self.D) if self.D.cross_replica_batchnorm else self.D
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.augmenter = parts.augmenter.to(self.device) if parts.augmenter else None
        self.g_opt = _adam(self.G, cfg.g_optimizer)
        self.d_opt = _adam(self.D, cfg.d_optimizer)
        names = [ref.name for ref in recipe.regularizers]
        labels = [n if names.count(n) == 1 else f"{n}{i}" for i, n in enumerate(names)]
        self.penalties = {net: [(f"Penalty/{label}", r) for label, r in zip(labels, parts.regularizers)
                                if net in r.targets] for net in ("generator", "discriminator")}
        self.labelled = list(zip(labels, parts.regularizers))
        d_regs = [r for _, r in self.penalties["discriminator"]]
        g_regs = [r for _, r in self.penalties["generator"]]
        self.d_input_grads = tuple(n for n in ("real", "fake") if any(n in r.input_gradients for r in d_regs))
        # in G's phase only the fakes carry a graph to differentiate through
        self.g_input_grads = ("fake",) if any("fake" in r.input_gradients for r in g_regs) else ()
        self.conditional = self.G.num_classes > 0
        self.share = slice(self.world.rank * cfg.batch_size // self.world.size,
                           (self.world.rank + 1) * cfg.batch_size // self.world.size)
        # latents of the whole global batch, drawn alike on every process: each takes its share
        self.z_rng = torch.Generator(self.device).manual_seed(recipe.seed + 1)
        torch.manual_seed(derive_seed(recipe.seed, "rank", self.world.rank))  # this process's own stream
        self.loss_scale = LossScale(cfg.precision)
        self.nimg = 0
        self._last_advance = 0
        self.steps = {"generator": 0, "discriminator": 0}
        self.bad_steps = 0
        self.batches_drawn = 0
        self.last_checkpoint: Path | None = None
        self.stop_signal: int | None = None
        self.raw_recipe = raw_recipe or recipe.model_dump(mode="json")
        self.log = ScalarLog(out_dir if self.world.main else None, self.world)

    @property
    def kimg(self) -> float:
        return self.nimg / 1000

    def critic(self, x: Tensor, c: Tensor | None) -> Tensor:
        """D as training uses it: every input it sees is augmented first."""
        return self.D(self.augmenter(x) if self.augmenter is not None else x, c)

    def latents(self, n_global: int) -> Tensor:
        """This process's share of ``n_global`` latents drawn for the whole batch."""
        z = self.G.sample_z(n_global, self.device, self.z_rng)
        return z[self.world.rank * n_global // self.world.size:(self.world.rank + 1) * n_global // self.world.size]

    # -- phases ------------------------------------------------------------------------------

    def follow_schedules(self) -> None:
        """Set the learning rates and Adam's β2 to their scheduled values at the current kimg."""
        for opt, cfg in ((self.g_opt, self.cfg.g_optimizer), (self.d_opt, self.cfg.d_optimizer)):
            for group in opt.param_groups:
                group["lr"] = cfg.lr(self.kimg)
                group["betas"] = (cfg.beta1, cfg.beta2(self.kimg))

    def _add_penalties(self, network: str, ctx: PenaltyContext, loss: Tensor) -> Tensor:
        step = self.steps[network]
        for label, reg in self.penalties[network]:
            if step % reg.every:
                continue
            value = reg.penalty(ctx)
            if value is not None:
                self.log.add(label, value)
                loss = loss + value
        return loss

    def discriminator_phase(self, real: Tensor, c: Tensor | None) -> bool:
        """One step of D on a real batch and as many fakes, with its penalties; False if it was skipped."""
        with torch.no_grad(), autocast(self.cfg.precision, self.device):
            fake = self.G(self.latents(self.cfg.batch_size), c).float()
        real = real.detach().requires_grad_("real" in self.d_input_grads)
        fake = fake.requires_grad_("fake" in self.d_input_grads)
        with autocast(self.cfg.precision, self.device):
            real_logits, fake_logits = self.critic(real, c).float(), self.critic(fake, c).float()
            loss = self.parts.loss.discriminator_loss(real_logits, fake_logits)
            ctx = PenaltyContext(self.D, self.critic, real, fake, c, real_logits, fake_logits, self.kimg,
                                 self.d_input_grads, grad_scale=self.loss_scale.value)
            total = self._add_penalties("discriminator", ctx, loss)
        good = self._update(self.D, self.d_opt, total, "D")
        self.steps["discriminator"] += 1
        self.nimg += self.cfg.batch_size
        if good and self.augmenter is not None:
            self.augmenter.update(self.kimg, real_logits.detach())
        self.log.add("Loss/D", loss)
        self.log.add("D/real", real_logits.detach().mean())
        self.log.add("D/fake", fake_logits.detach().mean())
        return good

    def generator_phase(self, real: Tensor | None, c: Tensor | None) -> bool:
        """One step of G; D's weights are frozen and, for a relativistic loss, its real logits are constants."""
        self.D.requires_grad_(False)
        with autocast(self.cfg.precision, self.device):
            fake = self.G(self.latents(self.cfg.batch_size), c).float()
            fake_logits = self.critic(fake, c).float()
            real_logits = None
            if real is not None and self.parts.loss.relativistic:
                with torch.no_grad():
                    real_logits = self.critic(real, c).float()
            loss = self.parts.loss.generator_loss(fake_logits, real_logits)
            ctx = PenaltyContext(self.G, self.critic, real, fake, c, real_logits, fake_logits, self.kimg,
                                 self.g_input_grads, grad_scale=self.loss_scale.value)
            total = self._add_penalties("generator", ctx, loss)
        good = self._update(self.G, self.g_opt, total, "G")
        self.D.requires_grad_(True)
        self.steps["generator"] += 1
        self.log.add("Loss/G", loss)
        return good

    def _update(self, network: nn.Module, optimizer: torch.optim.Optimizer, total: Tensor, name: str) -> bool:
        """Backward, average the gradients over processes, and step unless the loss or a gradient is not finite.

        Every process sees the same averaged values, so all of them skip a bad step together.
        """
        optimizer.zero_grad(set_to_none=True)
        (total * self.loss_scale.value).backward()
        params = [p for p in network.parameters() if p.grad is not None]
        grads = [p.grad for p in params]
        loss = total.detach().float().reshape(1)
        if self.world.distributed:
            flat = torch.cat([g.reshape(-1) for g in grads] + [loss * self.loss_scale.value])
            all_reduce_sum_(flat, self.world).div_(self.world.size * self.loss_scale.value)
            for g, part in zip(grads, flat[:-1].split([g.numel() for g in grads])):
                g.copy_(part.view_as(g))
            loss = flat[-1:]
        elif self.loss_scale.value != 1:
            torch._foreach_div_(grads, self.loss_scale.value)
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))) if grads else loss.new_zeros(())
        if bool(torch.isfinite(norm) & torch.isfinite(loss).all()):
            optimizer.step()
            self.loss_scale.clean()
            self.bad_steps = 0
            self.log.add(f"Grad/{name}_norm", norm)
            return True
        optimizer.zero_grad(set_to_none=True)
        if self.loss_scale.overflowed():
            return False
        self.bad_steps += 1
        self._report_bad_step(name, float(loss), float(norm))
        return False

    def _report_bad_step(self, name: str, loss: float, norm: float) -> None:
        """Log a skipped update; stop the run after ``max_bad_steps`` in a row."""
        step = self.steps["discriminator" if name == "D" else "generator"]
        self.log.event(self.kimg, {"event": "non_finite", "network": name, "step": step, "loss": loss,
                                   "grad_norm": norm, "in_a_row": self.bad_steps})
        if self.world.main:
            tqdm.write(f"warning: {name} step {step} at {self.kimg:.3f} kimg: loss {loss} and gradient norm {norm}; "
                       f"update skipped ({self.bad_steps} in a row)", file=sys.stderr)
        if self.bad_steps >= self.cfg.max_bad_steps:
            last = (f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint
                    else "no checkpoint was written yet")
            raise TrainingStopped(
                f"stopped at {self.kimg:.3f} kimg after {self.bad_steps} steps in a row with a non-finite loss or "
                f"gradient (train.max_bad_steps); {last}. Lower the learning rates or raise γ, then resume from it "
                f"with --resume {self.out_dir}")

    def regularizer_scalars(self) -> dict[str, float]:
        """Each regularizer's own scalars for each network it targets (the same on every process)."""
        networks = {"generator": self.G, "discriminator": self.D}
        return {f"{label}/{net}/{key}": value for label, reg in self.labelled for net in reg.targets
                for key, value in reg.scalars(networks[net]).items()}

    @torch.no_grad()
    def update_ema(self) -> None:
        """ema ← β·ema + (1 − β)·G with β = 0.5^(batch / half-life in images) (R3GAN, stylegan2-ada);
        a plain copy of G before ``ema_start_kimg`` (BigGAN starts its EMA late)."""
        half_life = self.cfg.ema_half_life_kimg(self.kimg) * 1000
        started = self.kimg >= self.cfg.ema_start_kimg
        beta = 0.5 ** (self.cfg.batch_size / max(half_life, 1e-8)) if started else 0.0
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.lerp_(p, 1 - beta)
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    # -- outputs -----------------------------------------------------------------------------

    def write_samples(self, fixed_z: Tensor, fixed_c: Tensor | None, reference: Tensor | None) -> Path | None:
        """A grid (or scatter plot) of G's EMA on fixed latents; rank 0 only (every process stands G's statistics)."""
        stand(self.G_ema, self.G_ema.standing_statistics, seed=self.recipe.seed)
        if not self.world.main:
            return None
        with torch.no_grad():
            samples = self.G_ema(fixed_z, fixed_c)
        path = self.out_dir / "samples" / f"fakes-{self.kimg:08.1f}kimg.png"
        save_samples(samples, path, reference, title=f"{self.kimg:.1f} kimg")
        self.log.image("Samples/ema", path, self.kimg)
        return path

    def evaluate(self, final: bool) -> dict[str, float]:
        """Compute the metrics due now (all of them at the end) with G's EMA; every process embeds its share."""
        due = [(ref, metric) for ref, metric in self.parts.metrics
               if final or (ref.every_kimg and self._crossed(ref.every_kimg))]
        if not due:
            return {}
        evaluation = Evaluation.of_run(self.G_ema, self.parts.dataset, self.recipe, self.world)
        results = {f"{ref.name}/{k}": float(v) for ref, metric in due for k, v in metric.compute(evaluation).items()}
        results = broadcast(results, self.world)
        self.log.record(self.kimg, {f"Metrics/{k}": v for k, v in results.items()})
        if self.world.main:
            append_results(self.out_dir, [{"metric": ref.name, "params": ref.params, "kimg": round(self.kimg, 3),
                                           "results": {k.split("/", 1)[1]: v for k, v in results.items()
                                                       if k.split("/", 1)[0] == ref.name}}
                                          for ref, _ in due])
        return results

    def _crossed(self, every_kimg: float) -> bool:
        """Whether the last step crossed a multiple of ``every_kimg``."""
        every = every_kimg * 1000
        return int(self.nimg // every) > int((self.nimg - self._last_advance) // every)

    def save_networks(self) -> Path:
        """The final networks, loadable with ``torch.load(..., weights_only=True)``."""
        path = self.out_dir / "network-final.pt"
        torch.save({
            "generator": self.G.state_dict(), "generator_ema": self.G_ema.state_dict(),
            "discriminator": self.D.state_dict(),
            "augmenter": self.augmenter.state_dict() if self.augmenter is not None else {},
            "kimg": self.kimg, "recipe": self.raw_recipe,
        }, path)
        return path

    # -- checkpoints -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything the run needs to continue exactly; the random streams of every process included."""
        own_rng = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            own_rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "generator": self.G.state_dict(), "generator_ema": self.G_ema.state_dict(),
            "discriminator": self.D.state_dict(),
            "augmenter": self.augmenter.state_dict() if self.augmenter is not None else {},
            "g_optimizer": self.g_opt.state_dict(), "d_optimizer": self.d_opt.state_dict(),
            "loss_scale": self.loss_scale.state_dict(),
            "progress": {"nimg": self.nimg, "last_advance": self._last_advance, "batches": self.batches_drawn,
                         "g_steps": self.steps["generator"], "d_steps": self.steps["discriminator"]},
            "rng": {"z": self.z_rng.get_state(), "processes": gather(own_rng, self.world)},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint's state; a run on another number of processes re-seeds their own streams."""
        self.G.load_state_dict(state["generator"])
        self.G_ema.load_state_dict(state["generator_ema"])
        self.D.load_state_dict(state["discriminator"])
        if self.augmenter is not None:
            self.augmenter.load_state_dict(state["augmenter"])
        self.g_opt.load_state_dict(state["g_optimizer"])
        self.d_opt.load_state_dict(state["d_optimizer"])
        self.loss_scale.load_state_dict(state["loss_scale"])
        progress = state["progress"]
        self.nimg, self._last_advance = int(progress["nimg"]), int(progress["last_advance"])
        self.batches_drawn = int(progress["batches"])
        self.steps = {"generator": int(progress["g_steps"]), "discriminator": int(progress["d_steps"])}
        self.z_rng.set_state(state["rng"]["z"])
        processes = state["rng"]["processes"]
        if len(processes) == self.world.size:
            own = processes[self.world.rank]
            torch.set_rng_state(own["cpu"])
            if "cuda" in own and self.device.type == "cuda":
                torch.cuda.set_rng_state(own["cuda"], self.device)
        else:
            torch.manual_seed(derive_seed(self.recipe.seed, "rank", self.world.rank, "batch", self.batches_drawn))
            if self.world.main:
                tqdm.write(f"note: the checkpoint was written by {len(processes)} processes and this run has "
                           f"{self.world.size}; each process's own random stream (augmentation) is re-seeded, so "
                           f"the run continues correctly but not bit for bit as before", file=sys.stderr)

    def save_checkpoint(self) -> Path:
        """Write a checkpoint on rank 0 (every rank contributes its random state); every rank learns if it failed."""
        state = self.state_dict()
        path, failure = None, None
        if self.world.main:
            try:
                path = checkpoints.save(self.out_dir, self.nimg, state, self.raw_recipe, self.cfg.keep_checkpoints)
            except checkpoints.CheckpointError as exc:
                failure = str(exc)
        path, failure = broadcast((path, failure), self.world)
        if failure:
            raise checkpoints.CheckpointError(failure)
        self.last_checkpoint = path
        return path

    def resume(self, checkpoint: checkpoints.Checkpoint) -> None:
        """Continue from a verified checkpoint: its state, and the logs cut back to its step."""
        self.load_state_dict(checkpoint.state)
        self.last_checkpoint = checkpoint.path
        self.log.rewind(self.kimg)

    # -- the loop ----------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """SIGINT or SIGTERM: finish the step, write a checkpoint and stop.

        A second SIGINT stops a single process at once; under torchrun it is ignored, since torchrun
        forwards the first to every process again and kills them itself if they take too long.
        """
        self.stop_signal = signum
        if not self.world.distributed:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def _stop_requested(self) -> bool:
        """Whether any process was asked to stop; all of them agree, so they stop at the same step."""
        if not self.world.distributed:
            return self.stop_signal is not None
        flag = torch.tensor([0 if self.stop_signal is None else self.stop_signal], dtype=torch.float64)
        code = int(all_reduce_sum_(flag.to(self.device), self.world).item())
        if code and self.stop_signal is None:
            self.stop_signal = signal.SIGTERM
        return code != 0

    def run(self) -> dict[str, float]:
        """Train until ``total_kimg`` (or a stop signal); returns the final metrics."""
        cfg = self.cfg
        if self.world.main:
            prepare_output(self.out_dir)
            (self.out_dir / "recipe.yaml").write_text(yaml.safe_dump(self.raw_recipe, sort_keys=False))
        batches = Batches(self.parts.dataset, cfg.batch_size, self.world, self.recipe.seed,
                          None if cfg.num_workers == "auto" else cfg.num_workers, self.conditional,
                          start=self.batches_drawn)
        fixed = torch.Generator(self.device).manual_seed(self.recipe.seed + 3)
        fixed_z = self.G.sample_z(cfg.num_samples, self.device, fixed)
        fixed_c = (torch.arange(cfg.num_samples, device=self.device) % self.G.num_classes
                   if self.conditional else None)
        reference = self._reference() if self.world.main else None
        needs_real_for_g = self.conditional or self.parts.loss.relativistic
        total_nimg = int(cfg.total_kimg * 1000)
        bar = tqdm(total=round(cfg.total_kimg, 3), initial=min(self.nimg, total_nimg) / 1000, unit="kimg",
                   dynamic_ncols=True, mininterval=1.0, disable=not self.world.main,
                   bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} kimg [{elapsed}<{remaining}{postfix}]")
        tick_time, tick_nimg, tick_wait = time.perf_counter(), self.nimg, 0.0
        results: dict[str, float] = {}
        handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while self.nimg < total_nimg:
                before = self.nimg
                self.follow_schedules()
                for _ in range(cfg.d_steps_per_g_step):
                    self.discriminator_phase(*batches.next())
                self.generator_phase(*(batches.next() if needs_real_for_g else (None, None)))
                self.update_ema()
                self.batches_drawn = batches.position
                self._last_advance = self.nimg - before
                bar.update(min(self.nimg, total_nimg) / 1000 - bar.n)
                done = self.nimg >= total_nimg
                stopping = self._stop_requested()
                if self._crossed(cfg.log_every_kimg) or done or stopping:
                    now = time.perf_counter()
                    speed = (self.nimg - tick_nimg) / max(now - tick_time, 1e-9)
                    extra = {"Progress/kimg": self.kimg, "Progress/img_per_s": speed,
                             "Progress/lr_G": self.g_opt.param_groups[0]["lr"],
                             "Progress/lr_D": self.d_opt.param_groups[0]["lr"],
                             "Timing/data_wait_share": (batches.waited - tick_wait) / max(now - tick_time, 1e-9)}
                    if self.loss_scale.enabled:
                        extra["Progress/loss_scale"] = self.loss_scale.value
                    if self.augmenter is not None:
                        extra.update({f"Augment/{k}": v for k, v in self.augmenter.scalars().items()})
                    extra.update(self.regularizer_scalars())
                    means = self.log.write(self.kimg, extra)
                    bar.set_postfix({"img/s": f"{speed:.0f}", "D": f"{means.get('Loss/D', float('nan')):.3f}",
                                     "G": f"{means.get('Loss/G', float('nan')):.3f}"}, refresh=False)
                    tick_time, tick_nimg, tick_wait = now, self.nimg, batches.waited
                if self._crossed(cfg.sample_every_kimg) or done:
                    self.write_samples(fixed_z, fixed_c, reference)
                results.update(self.evaluate(final=done))
                if self._crossed(cfg.checkpoint_every_kimg) or done or stopping:
                    self.save_checkpoint()
                if stopping:
                    break
        finally:
            for s, handler in handlers.items():
                signal.signal(s, handler)
            bar.close()
        if self.world.main and self.stop_signal is None:  # a stopped run has its checkpoint, not final networks
            self.save_networks()
            (self.out_dir / "metrics.json").write_text(json.dumps({"kimg": self.kimg, **results}, indent=2))
        self.log.close()
        return results

    def _reference(self) -> Tensor | None:
        """A sample of the data: drawn under scatter plots of points, or saved once as a grid of reals."""
        data = self.parts.dataset
        g = torch.Generator().manual_seed(self.recipe.seed)
        count = 2000 if len(data.shape) == 1 else self.cfg.num_samples
        idx = torch.randint(len(data), (min(count, len(data)),), generator=g).tolist()
        reals = torch.stack([torch.as_tensor(data[i][0]) for i in idx])
        if reals.dim() == 2:
            return reals
        save_samples(reals, self.out_dir / "samples" / "reals.png")
        return None


def prepare_output(out_dir: Path) -> None:
    """Make the run's folders and prove they are writable before any training, with a clear error if not."""
    probe = out_dir / ".write-test"
    try:
        (out_dir / "samples").mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"gancore")
        probe.unlink()
    except OSError as exc:
        raise GancoreError(f"cannot write to the run directory {out_dir}: {exc.strerror or exc}; "
                           f"choose another with --out or fix its permissions") from None
