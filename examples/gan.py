"""Train a small GAN with a custom training step: two networks, two optimizers, both losses logged.

The real data is a 2-D Gaussian made in code. The generator turns noise into points; the discriminator
tells real points from generated ones. One ``train_step`` function updates both, and trainwell does the
rest: averaging of the returned losses, progress display, history, callbacks and checkpoints (both
optimizers' states are saved with the model's).

Run: python examples/gan.py        (a few seconds on 2 CPU cores)
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from trainwell import Model, StepContext, StepOutputs, set_seeds

NOISE = 8
REAL_MEAN = torch.tensor([2.0, -1.0])
REAL_STD = torch.tensor([0.5, 0.3])


def real_points(count: int) -> torch.Tensor:
    return REAL_MEAN + REAL_STD * torch.randn(count, 2)


def make_networks() -> nn.ModuleDict:
    generator = nn.Sequential(nn.Linear(NOISE, 32), nn.ReLU(), nn.Linear(32, 2))
    discriminator = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
    return nn.ModuleDict({"generator": generator, "discriminator": discriminator})


def gan_step(ctx: StepContext, batch: Any) -> dict[str, Any]:
    """One GAN update: the discriminator on real and fake points, then the generator."""
    (real,) = batch
    generator, discriminator = ctx.networks["generator"], ctx.networks["discriminator"]
    noise = torch.randn(len(real), NOISE, device=real.device)
    ones = torch.ones(len(real), 1, device=real.device)

    # Discriminator: real -> 1, fake -> 0. The fake points are detached: this update leaves G alone.
    fake = generator(noise)
    real_logits = discriminator(real)
    d_loss = F.binary_cross_entropy_with_logits(real_logits, ones) + F.binary_cross_entropy_with_logits(
        discriminator(fake.detach()), torch.zeros_like(ones)
    )
    ctx.backward(d_loss)
    ctx.optimizer_step("discriminator")

    # Generator: make the discriminator say 1 on fakes.
    g_loss = F.binary_cross_entropy_with_logits(discriminator(fake), ones)
    ctx.backward(g_loss)
    ctx.optimizer_step("generator")
    # The discriminator's gradients from the generator's loss are not wanted for its next update.
    ctx.optimizers["discriminator"].zero_grad(set_to_none=True)

    # Scalars are logged (averaged over the epoch weighted by batch size); other tensors are only kept
    # for train_epoch_end.
    return {"d_loss": d_loss, "g_loss": g_loss, "real_called_real": (real_logits > 0).flatten()}


def train_epoch_end(ctx: StepContext, outputs: StepOutputs) -> dict[str, float]:
    """An epoch-level value from what the steps returned: how often D called real points real."""
    return {"d_real_acc": float(outputs["real_called_real"].float().mean())}


def generated_distance(model: Model, count: int = 2000) -> float:
    """How far generated points are from the real distribution: error of their mean and std."""
    generator = model.network["generator"]
    with torch.no_grad():
        fake = generator(torch.randn(count, NOISE))
    return float((fake.mean(0) - REAL_MEAN).abs().sum() + (fake.std(0) - REAL_STD).abs().sum())


def main(epochs: int = 30, verbose: bool = True) -> tuple[list[dict[str, Any]], float, float]:
    set_seeds(0)
    networks = make_networks()
    model = Model(
        networks,
        {
            "generator": {"optim": "adam", "lr": 2e-3, "betas": (0.5, 0.999)},
            "discriminator": {"optim": "adam", "lr": 2e-3, "betas": (0.5, 0.999)},
        },
        None,  # no loss function: the step computes its own losses
        train_step=gan_step,
        epoch_functions={"train_epoch_end": train_epoch_end},
    )
    before = generated_distance(model)
    loader = DataLoader(TensorDataset(real_points(4096)), batch_size=128, shuffle=True)
    history = model.fit_generator(loader, epochs=epochs, verbose=verbose)
    after = generated_distance(model)
    if verbose:
        print(f"distance of generated points to the real distribution: {before:.3f} -> {after:.3f}")
    return history, before, after


if __name__ == "__main__":
    _, start, end = main()
    sys.exit(0 if end < start / 3 else 1)
