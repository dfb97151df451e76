"""The training loop: D's phase, G's phase, G's EMA, and the bookkeeping between them.

One readable loop in the manner of stylegan2-ada. Every hyper-parameter comes from the
recipe's ``train`` section; components are used only through their interfaces.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import yaml
from torch import Tensor, nn
from tqdm import tqdm

from gancore.build import Parts
from gancore.images import save_samples
from gancore.interfaces import PenaltyContext
from gancore.recipe import OptimizerConfig, Recipe
from gancore.sampling import GeneratorSampler
from gancore.scalars import ScalarLog


def pick_device(name: str) -> torch.device:
    """``auto`` is CUDA when a GPU is visible, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def to_model_space(x: Tensor) -> Tensor:
    """Data as the networks see it: uint8 images to floats in [-1, 1]; points unchanged."""
    return x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x.float()


def _adam(network: nn.Module, cfg: OptimizerConfig) -> torch.optim.Adam:
    return torch.optim.Adam(network.parameters(), lr=cfg.lr(0), betas=(cfg.beta1, cfg.beta2(0)), eps=cfg.eps)


class Trainer:
    """Runs one recipe in one process; writes logs, samples and the final networks to ``out_dir``."""

    def __init__(self, recipe: Recipe, parts: Parts, out_dir: Path, raw_recipe: dict | None = None) -> None:
        self.recipe, self.parts, self.out_dir = recipe, parts, out_dir
        self.cfg = recipe.train
        self.device = pick_device(self.cfg.device)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = self.cfg.allow_tf32
        self.G = parts.generator.to(self.device).train()
        self.D = parts.discriminator.to(self.device).train()
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.augmenter = parts.augmenter.to(self.device) if parts.augmenter else None
        self.g_opt = _adam(self.G, self.cfg.g_optimizer)
        self.d_opt = _adam(self.D, self.cfg.d_optimizer)
        names = [ref.name for ref in recipe.regularizers]
        labels = [n if names.count(n) == 1 else f"{n}{i}" for i, n in enumerate(names)]
        self.penalties = {net: [(f"Penalty/{label}", r) for label, r in zip(labels, parts.regularizers)
                                if net in r.targets] for net in ("generator", "discriminator")}
        d_regs = [r for _, r in self.penalties["discriminator"]]
        g_regs = [r for _, r in self.penalties["generator"]]
        self.d_input_grads = tuple(n for n in ("real", "fake") if any(n in r.input_gradients for r in d_regs))
        # in G's phase only the fakes carry a graph to differentiate through
        self.g_input_grads = ("fake",) if any("fake" in r.input_gradients for r in g_regs) else ()
        self.conditional = self.G.num_classes > 0
        self.z_rng = torch.Generator(self.device).manual_seed(recipe.seed + 1)
        self.nimg = 0
        self._last_advance = 0
        self.steps = {"generator": 0, "discriminator": 0}
        self.raw_recipe = raw_recipe or recipe.model_dump(mode="json")

    @property
    def kimg(self) -> float:
        return self.nimg / 1000

    # -- data --------------------------------------------------------------------------------

    def _batches(self) -> Iterator[tuple[Tensor, Tensor | None]]:
        """Endless shuffled batches of (x in model space, labels or None), on the device."""
        order = torch.Generator().manual_seed(self.recipe.seed)
        loader = torch.utils.data.DataLoader(
            self.parts.dataset, batch_size=self.cfg.batch_size, shuffle=True, drop_last=True, generator=order,
            num_workers=self.cfg.num_workers, persistent_workers=self.cfg.num_workers > 0,
            pin_memory=self.device.type == "cuda",
        )
        while True:
            for x, c in loader:
                x = to_model_space(x.to(self.device, non_blocking=True))
                yield x, (c.to(self.device, non_blocking=True).long() if self.conditional else None)

    def critic(self, x: Tensor, c: Tensor | None) -> Tensor:
        """D as training uses it: every input it sees is augmented first."""
        return self.D(self.augmenter(x) if self.augmenter is not None else x, c)

    # -- phases ------------------------------------------------------------------------------

    def follow_schedules(self) -> None:
        """Set the learning rates and Adam's β2 to their scheduled values at the current kimg."""
        for opt, cfg in ((self.g_opt, self.cfg.g_optimizer), (self.d_opt, self.cfg.d_optimizer)):
            for group in opt.param_groups:
                group["lr"] = cfg.lr(self.kimg)
                group["betas"] = (cfg.beta1, cfg.beta2(self.kimg))

    def _add_penalties(self, network: str, ctx: PenaltyContext, loss: Tensor, log: ScalarLog) -> Tensor:
        step = self.steps[network]
        for label, reg in self.penalties[network]:
            if step % reg.every:
                continue
            value = reg.penalty(ctx)
            if value is not None:
                log.add(label, value)
                loss = loss + value
        return loss

    def discriminator_phase(self, real: Tensor, c: Tensor | None, log: ScalarLog) -> None:
        """One step of D on a real batch and as many fakes, with its penalties."""
        with torch.no_grad():
            fake = self.G(self.G.sample_z(len(real), self.device, self.z_rng), c)
        real = real.detach().requires_grad_("real" in self.d_input_grads)
        fake = fake.requires_grad_("fake" in self.d_input_grads)
        real_logits, fake_logits = self.critic(real, c), self.critic(fake, c)
        loss = self.parts.loss.discriminator_loss(real_logits, fake_logits)
        ctx = PenaltyContext(self.D, self.critic, real, fake, c, real_logits, fake_logits, self.kimg,
                             self.d_input_grads)
        total = self._add_penalties("discriminator", ctx, loss, log)
        self.d_opt.zero_grad(set_to_none=True)
        total.backward()
        self.d_opt.step()
        self.steps["discriminator"] += 1
        self.nimg += len(real)
        if self.augmenter is not None:
            self.augmenter.update(self.kimg, real_logits.detach())
        log.add("Loss/D", loss)
        log.add("D/real", real_logits.detach().mean())
        log.add("D/fake", fake_logits.detach().mean())

    def generator_phase(self, real: Tensor | None, c: Tensor | None, log: ScalarLog) -> None:
        """One step of G; D's weights are frozen and, for a relativistic loss, its real logits are constants."""
        self.D.requires_grad_(False)
        n = self.cfg.batch_size if real is None else len(real)
        fake = self.G(self.G.sample_z(n, self.device, self.z_rng), c)
        fake_logits = self.critic(fake, c)
        real_logits = None
        if real is not None and self.parts.loss.relativistic:
            with torch.no_grad():
                real_logits = self.critic(real, c)
        loss = self.parts.loss.generator_loss(fake_logits, real_logits)
        ctx = PenaltyContext(self.G, self.critic, real, fake, c, real_logits, fake_logits, self.kimg,
                             self.g_input_grads)
        total = self._add_penalties("generator", ctx, loss, log)
        self.g_opt.zero_grad(set_to_none=True)
        total.backward()
        self.g_opt.step()
        self.D.requires_grad_(True)
        self.steps["generator"] += 1
        log.add("Loss/G", loss)

    @torch.no_grad()
    def update_ema(self) -> None:
        """ema ← β·ema + (1 − β)·G with β = 0.5^(batch / half-life in images) (R3GAN, stylegan2-ada)."""
        half_life = self.cfg.ema_half_life_kimg(self.kimg) * 1000
        beta = 0.5 ** (self.cfg.batch_size / max(half_life, 1e-8))
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.lerp_(p, 1 - beta)
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    # -- outputs -----------------------------------------------------------------------------

    def write_samples(self, fixed_z: Tensor, fixed_c: Tensor | None, reference: Tensor | None,
                      log: ScalarLog) -> Path:
        with torch.no_grad():
            samples = self.G_ema(fixed_z, fixed_c)
        path = self.out_dir / "samples" / f"fakes-{self.kimg:08.1f}kimg.png"
        save_samples(samples, path, reference, title=f"{self.kimg:.1f} kimg")
        log.image("Samples/ema", path, self.kimg)
        return path

    def evaluate(self, final: bool, log: ScalarLog) -> dict[str, float]:
        """Compute the metrics due now (all of them at the end) with G's EMA."""
        due = [(ref, metric) for ref, metric in self.parts.metrics
               if final or (ref.every_kimg and self._crossed(ref.every_kimg))]
        if not due:
            return {}
        sampler = GeneratorSampler(self.G_ema, self.device, seed=self.recipe.seed + 2)
        results = {f"{ref.name}/{k}": float(v) for ref, metric in due
                   for k, v in metric.compute(sampler, self.parts.dataset).items()}
        log.record(self.kimg, {f"Metrics/{k}": v for k, v in results.items()})
        return results

    def _crossed(self, every_kimg: float) -> bool:
        """Whether the last D step crossed a multiple of ``every_kimg``."""
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

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> dict[str, float]:
        """Train for ``total_kimg``; returns the final metrics."""
        (self.out_dir / "samples").mkdir(parents=True, exist_ok=True)
        (self.out_dir / "recipe.yaml").write_text(yaml.safe_dump(self.raw_recipe, sort_keys=False))
        log = ScalarLog(self.out_dir)
        batches = self._batches()
        cfg = self.cfg
        fixed = torch.Generator(self.device).manual_seed(self.recipe.seed + 3)
        fixed_z = self.G.sample_z(cfg.num_samples, self.device, fixed)
        fixed_c = (torch.arange(cfg.num_samples, device=self.device) % self.G.num_classes
                   if self.conditional else None)
        reference = self._reference()
        needs_real_for_g = self.conditional or self.parts.loss.relativistic
        total_nimg = int(cfg.total_kimg * 1000)
        bar = tqdm(total=round(cfg.total_kimg, 3), unit="kimg", dynamic_ncols=True, mininterval=1.0,
                   bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} kimg [{elapsed}<{remaining}{postfix}]")
        tick_time, tick_nimg = time.perf_counter(), 0
        results: dict[str, float] = {}
        while self.nimg < total_nimg:
            before = self.nimg
            self.follow_schedules()
            for _ in range(cfg.d_steps_per_g_step):
                real, c = next(batches)
                self.discriminator_phase(real, c, log)
            real, c = next(batches) if needs_real_for_g else (None, None)
            self.generator_phase(real, c, log)
            self.update_ema()
            self._last_advance = self.nimg - before
            bar.update(min(self.nimg, total_nimg) / 1000 - bar.n)
            done = self.nimg >= total_nimg
            if self._crossed(cfg.log_every_kimg) or done:
                now = time.perf_counter()
                speed = (self.nimg - tick_nimg) / max(now - tick_time, 1e-9)
                extra = {"Progress/kimg": self.kimg, "Progress/img_per_s": speed,
                         "Progress/lr_G": self.g_opt.param_groups[0]["lr"],
                         "Progress/lr_D": self.d_opt.param_groups[0]["lr"]}
                if self.augmenter is not None:
                    extra.update({f"Augment/{k}": v for k, v in self.augmenter.scalars().items()})
                means = log.write(self.kimg, extra)
                bar.set_postfix({"img/s": f"{speed:.0f}", "D": f"{means['Loss/D']:.3f}",
                                 "G": f"{means['Loss/G']:.3f}"}, refresh=False)
                tick_time, tick_nimg = now, self.nimg
            if self._crossed(cfg.sample_every_kimg) or done:
                self.write_samples(fixed_z, fixed_c, reference, log)
            results.update(self.evaluate(final=done, log=log))
        bar.close()
        self.save_networks()
        (self.out_dir / "metrics.json").write_text(json.dumps({"kimg": self.kimg, **results}, indent=2))
        log.close()
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
