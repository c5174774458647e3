"""Observation model: CNN encoder to 32×32 categorical latents, transposed-CNN decoder (spec §4)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import TWMConfig
from .nets import MLP, RELU_GAIN, init_layer_

LOG_2PI = math.log(2.0 * math.pi)


def preprocess(obs: torch.Tensor) -> torch.Tensor:
    """uint8 frames -> float in [0, 1]."""
    return obs.float() / 255.0


class ObservationModel(nn.Module):
    def __init__(self, config: TWMConfig, in_channels: int):
        super().__init__()
        self.config = config
        c = config.obs_channels
        convs = [nn.Conv2d(a, b, 4, 2, 0) for a, b in zip((in_channels, c, 2 * c, 4 * c), (c, 2 * c, 4 * c, 8 * c))]
        for conv in convs:  # every conv is followed by SiLU (post-activation)
            init_layer_(conv, RELU_GAIN)
        self.encoder_cnn = nn.Sequential(*[m for conv in convs for m in (conv, nn.SiLU())], nn.Flatten())
        self.encoder_mlp = MLP(8 * c * 2 * 2, (config.obs_mlp_dim, config.obs_mlp_dim), config.z_dim)
        self.decoder_mlp = MLP(config.z_dim, (), 16 * c, post_activation=True)
        # ConvTranspose2d keeps PyTorch's default init: the official init helper skips it (spec T9).
        dims = (16 * c, 4 * c, 2 * c, c, in_channels)
        kernels = (5, 5, 6, 6)
        layers: list[nn.Module] = []
        for index, (a, b, k) in enumerate(zip(dims[:-1], dims[1:], kernels)):
            layers.append(nn.ConvTranspose2d(a, b, k, 2, 0))
            if index < len(kernels) - 1:
                layers.append(nn.SiLU())
        self.decoder_cnn = nn.Sequential(*layers)

    # ---- encoder ---------------------------------------------------------------------------
    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """Float frames [..., C, 64, 64] -> log-softmax logits [..., K, C_z]."""
        batch_shape = obs.shape[:-3]
        logits = self.encoder_mlp(self.encoder_cnn(obs.reshape(-1, *obs.shape[-3:])))
        logits = logits.view(*batch_shape, self.config.z_categoricals, self.config.z_categories)
        return F.log_softmax(logits, dim=-1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Flat latents [..., K*C_z] -> pixel means [..., C, 64, 64]."""
        batch_shape = z.shape[:-1]
        x = self.decoder_mlp(z.reshape(-1, z.shape[-1]))
        x = self.decoder_cnn(x.view(x.shape[0], -1, 1, 1))
        return x.view(*batch_shape, *x.shape[1:])

    # ---- losses (spec §4.1) ------------------------------------------------------------------
    def decoder_loss(self, recon: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """coef · mean over samples of -log N(obs; recon, I) summed over pixels."""
        pixels = obs.shape[-3:].numel()
        sq = (obs - recon).pow(2).flatten(-3).sum(-1)
        nll = 0.5 * sq + 0.5 * pixels * LOG_2PI
        return self.config.obs_decoder_coef * nll.mean()

    def entropy_loss(self, log_probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(coef · max(0, threshold - normalised entropy), normalised entropy)."""
        entropy = -(log_probs.exp() * log_probs).sum(-1).sum(-1).mean()
        normalised = entropy / (self.config.z_categoricals * math.log(self.config.z_categories))
        loss = self.config.obs_entropy_coef * torch.relu(self.config.obs_entropy_threshold - normalised)
        return loss, normalised.detach()

    def consistency_loss(self, log_probs: torch.Tensor, predicted_probs: torch.Tensor) -> torch.Tensor:
        """coef · mean of Σ_categoricals CE(dynamics probs (detached), encoder distribution)."""
        cross_entropy = -(predicted_probs.detach() * log_probs).sum(-1).sum(-1)
        return self.config.obs_consistency_coef * cross_entropy.mean()


def flatten_latent(z: torch.Tensor) -> torch.Tensor:
    return z.flatten(-2)


def sample_onehot(log_probs: torch.Tensor, generator: torch.Generator | None = None,
                  temperature: float = 1.0) -> torch.Tensor:
    """One-hot sample per categorical [..., K, C] (no gradient)."""
    logits = log_probs.detach() / temperature
    flat = logits.reshape(-1, logits.shape[-1]).softmax(-1)
    index = torch.multinomial(flat, 1, generator=generator).view(*logits.shape[:-1])
    return F.one_hot(index, logits.shape[-1]).to(log_probs.dtype)


def straight_through(log_probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One-hot sample + probs - stopgrad(probs): value is the sample, gradient is that of the probs."""
    probs = log_probs.exp()
    return sample_onehot(log_probs, generator) + probs - probs.detach()


def mode_onehot(log_probs: torch.Tensor) -> torch.Tensor:
    """One-hot argmax per categorical (acting-time latent, spec T8)."""
    return F.one_hot(log_probs.argmax(-1), log_probs.shape[-1]).to(log_probs.dtype)
