"""World model = observation model + dynamics model with their two optimizers (spec §5.6, §8.2)."""
from __future__ import annotations

import torch
from torch import nn

from agents.common.optim import clip_and_step

from .config import TWMConfig
from .dynamics import DynamicsModel
from .observation_model import ObservationModel, sample_onehot, straight_through


def adam(module: nn.Module, lr: float, eps: float, weight_decay: float) -> torch.optim.Adam:
    """Adam with L2 weight decay (not AdamW), as the official AdamOptim."""
    return torch.optim.Adam(module.parameters(), lr=lr, eps=eps, weight_decay=weight_decay)


def discounts(terminated: torch.Tensor, gamma: float) -> torch.Tensor:
    """γ where not terminated, 0 where terminated (truncation keeps γ)."""
    return gamma * (~terminated).float()


class WorldModel(nn.Module):
    def __init__(self, config: TWMConfig, in_channels: int, num_actions: int):
        super().__init__()
        self.config = config
        self.obs_model = ObservationModel(config, in_channels)
        self.dyn_model = DynamicsModel(config, num_actions)
        self.obs_optimizer = adam(self.obs_model, config.obs_lr, config.obs_eps, config.obs_wd)
        self.dyn_optimizer = adam(self.dyn_model, config.dyn_lr, config.dyn_eps, config.dyn_wd)

    def _step(self, optimizer: torch.optim.Optimizer, module: nn.Module, loss: torch.Tensor, clip: float) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_and_step(optimizer, module.parameters(), clip)

    def update(self, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, terminated: torch.Tensor,
               truncated: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One training step on windows: obs [B, L+2] float, actions/rewards/flags [B, L+1] (context first).

        Returns the 17 (L+1) sampled latents z_0..z_L (detached, flat) and the metrics.
        """
        c = self.config
        om, dm = self.obs_model, self.dyn_model
        self.eval()
        with torch.no_grad():
            z_context = sample_onehot(om.encode(obs[:, :1]), generator).flatten(-2)
            next_log_probs = om.encode(obs[:, -1:])
        self.train()
        frames = obs[:, 1:-1]
        log_probs = om.encode(frames)
        z = straight_through(log_probs, generator).flatten(-2)
        recon = om.decode(z)
        dec_loss = om.decoder_loss(recon, frames)
        ent_loss, norm_entropy = om.entropy_loss(log_probs)

        z_all = torch.cat([z_context, z.detach()], dim=1)
        ends = terminated | truncated
        g = discounts(terminated, c.gamma)
        h = dm.forward_sequence(z_all, actions, rewards[:, :-1], ends[:, :-1])
        targets = torch.cat([log_probs[:, 1:].detach(), next_log_probs], dim=1)
        dyn_loss, metrics = dm.loss(h[:, 1:], targets, rewards[:, 1:], g[:, 1:], (~ends[:, 1:]).float())
        self._step(self.dyn_optimizer, dm, dyn_loss, c.dyn_grad_clip)

        with torch.no_grad():
            predicted_probs = dm.heads(h[:, :-1].detach())[0].exp()
        con_loss = om.consistency_loss(log_probs, predicted_probs)
        obs_loss = dec_loss + ent_loss + con_loss
        self._step(self.obs_optimizer, om, obs_loss, c.obs_grad_clip)
        metrics.update({"obs_loss": obs_loss.detach(), "dec_loss": dec_loss.detach(), "ent_loss": ent_loss.detach(),
                        "con_loss": con_loss.detach(), "z_norm_entropy": norm_entropy})
        return z_all, metrics

    def pretrain_obs(self, frames: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Obs-model step on single frames [N, C, H, W]: decoder + entropy loss (no consistency term)."""
        om = self.obs_model.train()
        log_probs = om.encode(frames)
        recon = om.decode(straight_through(log_probs, generator).flatten(-2))
        dec_loss = om.decoder_loss(recon, frames)
        ent_loss, norm_entropy = om.entropy_loss(log_probs)
        self._step(self.obs_optimizer, om, dec_loss + ent_loss, self.config.obs_grad_clip)
        return {"obs_loss": (dec_loss + ent_loss).detach(), "z_norm_entropy": norm_entropy}

    def pretrain_dyn(self, log_probs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor,
                     terminated: torch.Tensor, truncated: torch.Tensor,
                     generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Dynamics step on stored encoder distributions [B, L+2, K, C] (context, L steps, next)."""
        c = self.config
        dm = self.dyn_model.train()
        z = sample_onehot(log_probs[:, :-1], generator).flatten(-2)
        ends = terminated | truncated
        g = discounts(terminated, c.gamma)
        h = dm.forward_sequence(z, actions, rewards[:, :-1], ends[:, :-1])
        loss, metrics = dm.loss(h[:, 1:], log_probs[:, 2:], rewards[:, 1:], g[:, 1:], (~ends[:, 1:]).float())
        self._step(self.dyn_optimizer, dm, loss, c.dyn_grad_clip)
        return metrics
