"""Separate actor and critic MLPs on latents, trained with GAE over predicted discounts (spec §7)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from agents.common.optim import clip_and_step

from .config import TWMConfig
from .nets import orthogonal_mlp

LOG_2PI = math.log(2.0 * math.pi)


@torch.no_grad()
def gae(rewards: torch.Tensor, values: torch.Tensor, discounts: torch.Tensor, lam: float) -> torch.Tensor:
    """Advantages [B, T] from rewards/discounts [B, T] and values [B, T+1] (A_T = 0).

    δ_t = r_t + g_t V_{t+1} - V_t; A_t = δ_t + λ g_t A_{t+1}; the discounts g_t already include the
    end cut (g_t = ĝ_t (1 - d̂_t)).
    """
    deltas = rewards + discounts * values[:, 1:] - values[:, :-1]
    advantages = torch.zeros_like(deltas)
    running = torch.zeros_like(deltas[:, 0])
    for t in range(deltas.shape[1] - 1, -1, -1):
        running = deltas[:, t] + lam * discounts[:, t] * running
        advantages[:, t] = running
    return advantages


class ActorCritic(nn.Module):
    def __init__(self, config: TWMConfig, num_actions: int):
        super().__init__()
        self.config = config
        self.num_actions = num_actions
        self.actor = orthogonal_mlp(config.z_dim, config.ac_dims, num_actions)
        self.critic = orthogonal_mlp(config.z_dim, config.ac_dims, 1)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr, eps=config.ac_eps,
                                                weight_decay=config.ac_wd)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr, eps=config.ac_eps,
                                                 weight_decay=config.ac_wd)

    def policy_logits(self, z: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        return self.actor(z) / temperature

    def value(self, z: torch.Tensor) -> torch.Tensor:
        return self.critic(z).squeeze(-1)

    def act(self, z: torch.Tensor, generator: torch.Generator | None, temperature: float = 1.0) -> torch.Tensor:
        probs = F.softmax(self.policy_logits(z, temperature), -1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

    def update(self, z: torch.Tensor, a: torch.Tensor, r: torch.Tensor, g: torch.Tensor, d: torch.Tensor,
               weights: torch.Tensor, policy_gradient: bool = True) -> dict[str, torch.Tensor]:
        """One critic step then one actor step on trajectories z [B, T+1, zdim], a/r/g/d/weights [B, T].

        policy_gradient=False: the actor only maximises its normalised entropy (pretraining, spec §8.2).
        """
        c = self.config
        z = z.detach()
        with torch.no_grad():
            values = self.value(z)
            discounts = g * (1.0 - d.float())
            advantages = gae(r, values, discounts, c.lam)
            returns = advantages + values[:, :-1]

        predicted = self.value(z[:, :-1])
        critic_loss = (weights * (0.5 * (returns - predicted).pow(2) + 0.5 * LOG_2PI)).mean()
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        clip_and_step(self.critic_optimizer, self.critic.parameters(), c.ac_grad_clip)

        log_probs = F.log_softmax(self.policy_logits(z[:, :-1]), -1)
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        normalised_entropy = (weights * entropy).mean() / math.log(self.num_actions)
        entropy_loss = c.actor_entropy_coef * torch.relu(c.actor_entropy_threshold - normalised_entropy)
        if policy_gradient:
            chosen = log_probs.gather(-1, a.unsqueeze(-1)).squeeze(-1)
            reinforce = -(weights * chosen * advantages).mean()
            actor_loss = reinforce + entropy_loss
        else:
            # official pretraining objective: maximise normalised entropy, coef 0.01
            actor_loss = -c.actor_entropy_coef * normalised_entropy
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        clip_and_step(self.actor_optimizer, self.actor.parameters(), c.ac_grad_clip)
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(),
                "actor_norm_entropy": normalised_entropy.detach(), "advantage_mean": advantages.mean(),
                "return_mean": returns.mean()}
