"""Recurrent actor-critic on pixel frames: a CNN trunk, an LSTMCell, linear actor and critic heads.

IRIS (spec §6.1): `IrisConvTrunk` (4 × [Conv3x3 → MaxPool2 → ReLU], 32/32/64/64 channels, input
[0,1] remapped to [-1,1]) → flatten 1024 → LSTMCell(1024, 512) → actor Linear(512, A), critic
Linear(512, 1); PyTorch default init. Δ-IRIS (delta_iris.md §6.1) has a different trunk (its
FrameEncoder, input not remapped), a 255-way two-hot critic and a zero-initialised critic: it reuses
`RecurrentActorCritic` by passing its own trunk, `value_outputs=255`, `zero_init_critic=True`.

State is a tuple (h, c), each [B, hidden]. `step` runs one frame; `burn_in` runs a sequence and
leaves the state of rows unchanged where `mask` is False (IRIS skips padded burn-in frames).
"""
from __future__ import annotations

import torch
import torch.nn as nn

LSTMState = tuple[torch.Tensor, torch.Tensor]


class IrisConvTrunk(nn.Module):
    """Frames [B, 3, 64, 64] in [0, 1] → features [B, 1024] (IRIS actor-critic CNN)."""

    def __init__(self, in_channels: int = 3, channels: tuple[int, ...] = (32, 32, 64, 64), image_size: int = 64):
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            layers += [nn.Conv2d(previous, width, 3, stride=1, padding=1), nn.MaxPool2d(2, 2), nn.ReLU()]
            previous = width
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.output_dim = previous * (image_size // 2 ** len(channels)) ** 2

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(frames.mul(2).sub(1))


class RecurrentActorCritic(nn.Module):
    def __init__(self, trunk: nn.Module, feature_dim: int, num_actions: int, hidden_dim: int = 512,
                 value_outputs: int = 1, zero_init_critic: bool = False):
        super().__init__()
        self.trunk = trunk
        self.hidden_dim = hidden_dim
        self.lstm = nn.LSTMCell(feature_dim, hidden_dim)
        self.actor = nn.Linear(hidden_dim, num_actions)
        self.critic = nn.Linear(hidden_dim, value_outputs)
        if zero_init_critic:
            nn.init.zeros_(self.critic.weight)
            nn.init.zeros_(self.critic.bias)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> LSTMState:
        device = device if device is not None else self.actor.weight.device
        zeros = torch.zeros(batch_size, self.hidden_dim, device=device)
        return zeros, zeros.clone()

    def step(self, frames: torch.Tensor, state: LSTMState) -> tuple[torch.Tensor, torch.Tensor, LSTMState]:
        """One frame [B, C, H, W] in [0,1] → (action logits [B, A], values [B, value_outputs], new state)."""
        h, c = self.lstm(self.trunk(frames), state)
        return self.actor(h), self.critic(h), (h, c)

    def burn_in(self, frames: torch.Tensor, mask: torch.Tensor, state: LSTMState) -> LSTMState:
        """Runs frames [B, T, C, H, W]; rows where mask[:, t] is False keep their state at step t."""
        for t in range(frames.size(1)):
            _, _, (h, c) = self.step(frames[:, t], state)
            keep = mask[:, t].unsqueeze(1)
            state = (torch.where(keep, h, state[0]), torch.where(keep, c, state[1]))
        return state
