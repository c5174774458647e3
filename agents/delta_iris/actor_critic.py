"""CNN + LSTM actor-critic with an EMA target copy, trained in imagination (spec §6).

The online net is regressed towards λ-returns computed from the *target* critic, whose values are
also the policy-gradient baseline (official code).
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from agents.common.returns import lambda_returns
from agents.common.twohot import SymlogTwoHot
from agents.delta_iris.config import ActorCriticConfig
from agents.delta_iris.imagination import Imagination, sample_categorical
from agents.delta_iris.nets import FrameEncoder, latent_resolution

LstmState = tuple[torch.Tensor, torch.Tensor]


class CnnLstm(nn.Module):
    """Frame [B, C, 64, 64] in [0, 1] + LSTM state -> action logits [B, A], value logits [B, 255 or 1]."""

    def __init__(self, config: ActorCriticConfig, num_actions: int, image_channels: int = 3, image_size: int = 64):
        super().__init__()
        self.lstm_dim = config.lstm_dim
        self.cnn = FrameEncoder(image_channels, config.cnn)
        features = latent_resolution(image_size, config.cnn) ** 2 * config.cnn.latent_dim
        self.lstm = nn.LSTMCell(features, config.lstm_dim)
        self.actor = nn.Linear(config.lstm_dim, num_actions)
        self.critic = nn.Linear(config.lstm_dim, 255 if config.two_hot_values else 1)
        nn.init.zeros_(self.critic.weight)
        nn.init.zeros_(self.critic.bias)

    def initial_state(self, batch: int) -> LstmState:
        zeros = torch.zeros(batch, self.lstm_dim, device=self.actor.weight.device)
        return zeros, zeros.clone()

    def forward(self, frame: torch.Tensor, state: LstmState) -> tuple[torch.Tensor, torch.Tensor, LstmState]:
        x = self.cnn(frame).permute(0, 2, 3, 1).flatten(1)  # (h, w, c) order
        hx, cx = self.lstm(x, state)
        return self.actor(hx), self.critic(hx), (hx, cx)

    def burn_in(self, frames: torch.Tensor, state: LstmState) -> LstmState:
        """Feeds frames [B, T, C, H, W] one by one (padded zero frames included, as official)."""
        for t in range(frames.shape[1]):
            _, _, state = self(frames[:, t], state)
        return state


class ActorCritic(nn.Module):
    def __init__(self, config: ActorCriticConfig, num_actions: int, image_channels: int = 3, image_size: int = 64):
        super().__init__()
        self.config = config
        self.model = CnnLstm(config, num_actions, image_channels, image_size)
        self.target = copy.deepcopy(self.model).requires_grad_(False)
        self.value_codec = SymlogTwoHot() if config.two_hot_values else None

    def value(self, value_logits: torch.Tensor) -> torch.Tensor:
        return self.value_codec.predict(value_logits) if self.value_codec is not None else value_logits[..., 0].float()

    @torch.no_grad()
    def update_target(self) -> None:
        """θ̄ <- ema θ̄ + (1 - ema) θ over every state entry."""
        source = self.model.state_dict()
        for name, target in self.target.state_dict().items():
            target.copy_(self.config.target_ema * target + (1 - self.config.target_ema) * source[name])

    def compute_loss(self, frames: torch.Tensor, actions: torch.Tensor, imagination: Imagination,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Imagination loss from segments of burn_in + 1 real frames [B, T, C, H, W] and actions [B, T]."""
        cfg = self.config
        if frames.shape[1] != cfg.burn_in + 1:
            raise ValueError(f"actor-critic segments must hold burn_in + 1 = {cfg.burn_in + 1} frames, "
                             f"got {frames.shape[1]}")
        batch = frames.shape[0]
        with torch.no_grad():
            state = self.model.burn_in(frames[:, :-1], self.model.initial_state(batch))
            target_state = self.target.burn_in(frames[:, :-1], self.target.initial_state(batch))
            frame = imagination.reset(frames, actions[:, :-1])
        logits, value_logits, sampled, target_values, rewards, ends = [], [], [], [], [], []
        for _ in range(cfg.horizon):
            step_logits, step_values, state = self.model(frame, state)
            action = sample_categorical(step_logits.detach(), generator)
            with torch.no_grad():
                _, target_logits, target_state = self.target(frame, target_state)
                frame, reward, end = imagination.step(action)
            logits.append(step_logits)
            value_logits.append(step_values)
            sampled.append(action)
            target_values.append(self.value(target_logits))
            rewards.append(reward)
            ends.append(end)
        with torch.no_grad():
            _, bootstrap_logits, _ = self.target(frame, target_state)
            bootstrap = self.value(bootstrap_logits)
        logits_t, values_t = torch.stack(logits, 1), torch.stack(value_logits, 1)
        actions_t, ends_t = torch.stack(sampled, 1), torch.stack(ends, 1)
        baseline = torch.stack(target_values, 1)
        returns = lambda_returns(torch.stack(rewards, 1), baseline, ends_t.float(), cfg.gamma, cfg.lambda_, bootstrap)
        mask = (ends_t.long().cumsum(1) - ends_t.long()) == 0  # up to and including the first predicted end
        log_probs = logits_t.float().log_softmax(-1)
        chosen = log_probs.gather(-1, actions_t.unsqueeze(-1)).squeeze(-1)
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        loss_actions = -(chosen * (returns - baseline))[mask].mean()
        if self.value_codec is not None:
            loss_values = self.value_codec.loss(values_t, returns, mask)
        else:
            loss_values = F.mse_loss(values_t[..., 0].float()[mask], returns[mask])
        mean_entropy = entropy[mask].mean()
        loss_entropy = -cfg.entropy_weight * mean_entropy
        self.update_target()
        metrics = {"actions_loss": loss_actions.detach(), "values_loss": loss_values.detach(),
                   "entropy_loss": loss_entropy.detach(), "policy_entropy": mean_entropy.detach(),
                   "imagined_return": returns.mean(), "imagined_reward": torch.stack(rewards, 1).mean()}
        return loss_actions + loss_values + loss_entropy, metrics
