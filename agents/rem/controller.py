"""REM's latent-space actor-critic C (spec §7) and imagination with POP (spec §6)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from agents.common.actor_critic import LSTMState, RecurrentActorCritic
from agents.common.returns import lambda_returns
from agents.rem.config import ControllerConfig
from agents.rem.tokenizer import Tokenizer
from agents.rem.world_model import POPWorldModel, _sample


class CodeGridTrunk(nn.Module):
    """Codebook grid [B, dim, g, g] -> conv3x3+SiLU (x2) -> flatten -> Linear + SiLU -> [B, hidden]."""

    def __init__(self, embed_dim: int, grid: int, channels: tuple[int, ...], hidden_dim: int):
        super().__init__()
        layers: list[nn.Module] = []
        previous = embed_dim
        for width in channels:
            layers += [nn.Conv2d(previous, width, 3, padding=1), nn.SiLU()]
            previous = width
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(previous * grid * grid, hidden_dim), nn.SiLU())

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        return self.net(grid)


class LatentActorCritic(nn.Module):
    """One LSTMCell alternating observation steps (give logits and value) and action steps (outputs unused)."""

    def __init__(self, cfg: ControllerConfig, embed_dim: int, grid: int, num_actions: int):
        super().__init__()
        trunk = CodeGridTrunk(embed_dim, grid, cfg.conv_channels, cfg.hidden_dim)
        self.core = RecurrentActorCritic(trunk, cfg.hidden_dim, num_actions, cfg.hidden_dim)
        self.action_embedding = nn.Embedding(num_actions, cfg.hidden_dim)

    def initial_state(self, batch: int, device: torch.device | str) -> LSTMState:
        return self.core.initial_state(batch, device)

    def observe(self, grid: torch.Tensor, state: LSTMState) -> tuple[torch.Tensor, torch.Tensor, LSTMState]:
        logits, value, state = self.core.step(grid, state)
        return logits, value[:, 0], state

    def act_step(self, actions: torch.Tensor, state: LSTMState) -> LSTMState:
        return self.core.lstm(self.action_embedding(actions), state)

    def burn_in(self, grids: torch.Tensor, mask: torch.Tensor, state: LSTMState) -> LSTMState:
        """Observation-only burn-in (spec D10); rows whose frame is padding keep their state."""
        return self.core.burn_in(grids, mask, state)


@dataclass
class Imagination:
    logits: torch.Tensor  # [B, S, A] (with gradient)
    values: torch.Tensor  # [B, S] (with gradient)
    actions: torch.Tensor  # [B, S]
    rewards: torch.Tensor  # [B, S] in {-1, 0, 1}
    ends: torch.Tensor  # [B, S] in {0, 1}
    frames_tokens: torch.Tensor  # [B, S, K]: tokens of the frame each decision saw
    world_model_calls: int


class PopSimulator:
    """M as an environment over tokens (spec §6): primed with two real blocks, then one decision per `step`.

    Each step makes two M calls: stream A over the pending frame and the action (reward and end from the
    action token's output), then stream B's prediction tokens for the next frame, which never change M's state.
    Runs without gradient; M is expected in eval mode.
    """

    def __init__(self, world_model: POPWorldModel, codebook: torch.Tensor, tokens: torch.Tensor,
                 action: torch.Tensor, generator: torch.Generator | None = None):
        """tokens [B, 2, K]: the last two real frames; action [B]: the action taken after the first of them."""
        self.world_model, self.codebook, self.generator = world_model, codebook.detach(), generator
        self.states = world_model.backbone.empty_state(tokens.shape[0], tokens.device, codebook.dtype)
        self.position, self.calls = 0, 0
        with torch.no_grad():
            first = world_model.embed_blocks(tokens[:, :1], action[:, None], self.codebook)
            self.pending = torch.cat([first, F.embedding(tokens[:, 1], self.codebook)], dim=1)

    @torch.no_grad()
    def step(self, action: torch.Tensor, temperature: float,
             predict_next: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Reward [B] in {-1, 0, 1}, end [B] in {0, 1}, and (if predict_next) the next frame's tokens [B, K]."""
        inputs = torch.cat([self.pending, self.world_model.embed_actions(action)[:, None]], dim=1)
        outputs, self.states = self.world_model.observe(inputs, self.states, self.position)
        self.position, self.calls = self.position + inputs.shape[1], self.calls + 1
        reward, end = self.world_model.reward_end(outputs[:, -1], self.generator)
        if not predict_next:
            return reward, end, None
        next_logits = self.world_model.predict_next_logits(self.states, self.position)
        self.calls += 1
        next_tokens = _sample(next_logits / temperature, self.generator)
        self.pending = F.embedding(next_tokens, self.codebook)
        return reward, end, next_tokens


def imagine(tokenizer: Tokenizer, world_model: POPWorldModel, controller: LatentActorCritic, cfg: ControllerConfig,
            context_blocks: int, tokens: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor) -> Imagination:
    """Rolls C in M from real segments (spec §6). tokens [B, 1+burn_in, K], actions/mask [B, 1+burn_in].

    Frames 0..burn_in-1 warm C up; frames -2, -1 with action -2 are M's context; then
    imagine_horizon - context_blocks + 1 decisions, two M calls per decision (the last needs one).
    Only C's forward passes carry gradient; M and V run without it (M is expected in eval mode).
    """
    grids = tokenizer.code_grid(tokens)
    with torch.no_grad():
        state = controller.burn_in(grids[:, :-1], mask[:, :-1], controller.initial_state(tokens.shape[0],
                                                                                          tokens.device))
    simulator = PopSimulator(world_model, tokenizer.codebook, tokens[:, -2:], actions[:, -2])
    num_steps = cfg.imagine_horizon - context_blocks + 1
    current_tokens, grid = tokens[:, -1], grids[:, -1]
    out = {key: [] for key in ("logits", "values", "actions", "rewards", "ends", "frames")}
    for step in range(num_steps):
        logits, value, state = controller.observe(grid, state)
        action = _sample(logits.detach() / cfg.imagine_temperature, None)
        state = controller.act_step(action, state)
        reward, end, next_tokens = simulator.step(action, cfg.imagine_token_temperature,
                                                  predict_next=step < num_steps - 1)
        for key, value_ in (("logits", logits), ("values", value), ("actions", action), ("rewards", reward),
                            ("ends", end), ("frames", current_tokens)):
            out[key].append(value_)
        if next_tokens is not None:
            current_tokens, grid = next_tokens, tokenizer.code_grid(next_tokens)
    stack = {key: torch.stack(values, dim=1) for key, values in out.items()}
    return Imagination(stack["logits"], stack["values"], stack["actions"], stack["rewards"], stack["ends"],
                       stack["frames"], simulator.calls)


def actor_critic_loss(rollout: Imagination, cfg: ControllerConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """REINFORCE with value baseline + entropy bonus + MSE value, on all but the last decision (spec §7.2)."""
    returns = lambda_returns(rollout.rewards, rollout.values.detach(), rollout.ends, cfg.gamma, cfg.lambda_)[:, :-1]
    values = rollout.values[:, :-1]
    log_probs = torch.log_softmax(rollout.logits[:, :-1], dim=-1)
    taken = log_probs.gather(-1, rollout.actions[:, :-1, None])[..., 0]
    policy_loss = -(taken * (returns - values.detach())).mean()
    entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
    value_loss = F.mse_loss(values, returns)
    total = policy_loss - cfg.entropy_weight * entropy + value_loss
    return total, {"controller/loss": total.detach(), "controller/policy": policy_loss.detach(),
                   "controller/entropy": entropy.detach(), "controller/value": value_loss.detach(),
                   "controller/imagined_return": rollout.rewards.sum(1).mean()}
