"""One gradient step of each IRIS component (spec §4.3, §5.3, §6.2–6.3)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from agents.common.actor_critic import RecurrentActorCritic
from agents.common.optim import clip_and_step
from agents.common.returns import lambda_returns
from agents.iris.batches import SegmentBatch
from agents.iris.config import ActorCriticConfig
from agents.iris.imagination import WorldModelEnv, sample_logits
from agents.iris.tokenizer import Tokenizer
from agents.iris.world_model import WorldModel


def to_frames(array: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """uint8 [..., C, H, W] → float in [0, 1] on device."""
    return torch.from_numpy(np.ascontiguousarray(array)).to(device, non_blocking=True).float().div_(255)


def tokenizer_step(tokenizer: Tokenizer, optimizer: torch.optim.Optimizer, frames: torch.Tensor,
                   max_grad_norm: float) -> dict[str, torch.Tensor]:
    tokenizer.train()
    optimizer.zero_grad(set_to_none=True)
    losses = tokenizer.loss(frames)
    losses.total.backward()
    clip_and_step(optimizer, tokenizer.trainable_parameters(), max_grad_norm)
    return {"tokenizer/total": losses.total.detach(), "tokenizer/codebook": losses.codebook.detach(),
            "tokenizer/commitment": losses.commitment.detach(), "tokenizer/l1": losses.reconstruction.detach(),
            "tokenizer/perceptual": losses.perceptual.detach(), "tokenizer/squared": losses.squared.detach()}


@torch.no_grad()
def tokenize_segments(tokenizer: Tokenizer, frames: torch.Tensor) -> torch.Tensor:
    """frames [B, T, C, H, W] → tokens [B, T, K] with the tokenizer in eval mode."""
    tokenizer.eval()
    b, t = frames.shape[:2]
    return tokenizer.encode(frames.flatten(0, 1)).tokens.view(b, t, -1)


def world_model_step(world_model: WorldModel, tokenizer: Tokenizer, optimizer: torch.optim.Optimizer,
                     batch: SegmentBatch, device: torch.device | str, max_grad_norm: float) -> dict[str, torch.Tensor]:
    tokens = tokenize_segments(tokenizer, to_frames(batch.obs, device))
    world_model.train()
    optimizer.zero_grad(set_to_none=True)
    as_tensor = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    losses = world_model.loss(tokens, as_tensor(batch.actions), as_tensor(batch.rewards), as_tensor(batch.ends),
                              as_tensor(batch.valid))
    losses.total.backward()
    clip_and_step(optimizer, world_model.parameters(), max_grad_norm)
    return {"world_model/total": losses.total.detach(), "world_model/next_token": losses.next_token.detach(),
            "world_model/reward": losses.reward.detach(), "world_model/end": losses.end.detach()}


@torch.no_grad()
def burn_in_on_reconstructions(actor_critic: RecurrentActorCritic, tokenizer: Tokenizer, frames: torch.Tensor,
                               valid: torch.Tensor):
    """The policy's LSTM state after the reconstructions of real frames [B, T, 3, H, W] (valid [B, T])."""
    b, t = frames.shape[:2]
    burn_frames = tokenizer.reconstruct(frames.flatten(0, 1)).view(b, t, *frames.shape[2:])
    return actor_critic.burn_in(burn_frames, valid, actor_critic.initial_state(b, frames.device))


def imagine(actor_critic: RecurrentActorCritic, wm_env: WorldModelEnv, batch: SegmentBatch, cfg: ActorCriticConfig,
            device: torch.device | str) -> dict[str, torch.Tensor]:
    """Burn-in on the first T-1 real frames, then H imagined steps from the last one (spec §6.2).

    Returns stacked [B, H] log-probs, entropies, values (with grad) and rewards, ends (sampled).
    """
    frames = to_frames(batch.obs, device)
    valid = torch.from_numpy(batch.valid).to(device)
    state = burn_in_on_reconstructions(actor_critic, wm_env.tokenizer, frames[:, :-1], valid[:, :-1])
    obs = wm_env.reset(frames[:, -1])
    log_probs, entropies, values, rewards, ends = [], [], [], [], []
    for k in range(cfg.horizon):
        logits, value, state = actor_critic.step(obs, state)
        actions = sample_logits(logits.detach())
        log_softmax = logits.log_softmax(-1)
        log_probs.append(log_softmax.gather(1, actions.unsqueeze(1)).squeeze(1))
        entropies.append(-(log_softmax.exp() * log_softmax).sum(-1))
        values.append(value.squeeze(-1))
        reward, end, obs = wm_env.step(actions, predict_next=k < cfg.horizon - 1)
        rewards.append(reward)
        ends.append(end)
    stack = lambda xs: torch.stack(xs, dim=1)  # noqa: E731
    return {"log_probs": stack(log_probs), "entropies": stack(entropies), "values": stack(values),
            "rewards": stack(rewards), "ends": stack(ends)}


def actor_critic_losses(rollout: dict[str, torch.Tensor], cfg: ActorCriticConfig) -> dict[str, torch.Tensor]:
    """REINFORCE with value baseline, entropy bonus, MSE to λ-returns over t = 0..H-2 (spec §6.3)."""
    values = rollout["values"]
    returns = lambda_returns(rollout["rewards"], values.detach(), rollout["ends"], cfg.gamma, cfg.lambda_)[:, :-1]
    values = values[:, :-1]
    advantages = returns - values.detach()
    policy = -(rollout["log_probs"][:, :-1] * advantages).mean()
    entropy = -cfg.entropy_weight * rollout["entropies"][:, :-1].mean()
    value = F.mse_loss(values, returns)
    return {"policy": policy, "entropy": entropy, "value": value, "total": policy + entropy + value}


def actor_critic_step(actor_critic: RecurrentActorCritic, wm_env: WorldModelEnv, optimizer: torch.optim.Optimizer,
                      batch: SegmentBatch, cfg: ActorCriticConfig, device: torch.device | str,
                      max_grad_norm: float) -> dict[str, torch.Tensor]:
    wm_env.tokenizer.eval()
    wm_env.world_model.eval()
    actor_critic.train()
    optimizer.zero_grad(set_to_none=True)
    rollout = imagine(actor_critic, wm_env, batch, cfg, device)
    losses = actor_critic_losses(rollout, cfg)
    losses["total"].backward()
    clip_and_step(optimizer, actor_critic.parameters(), max_grad_norm)
    metrics = {f"actor_critic/{k}": v.detach() for k, v in losses.items()}
    metrics["actor_critic/imagined_return"] = rollout["rewards"].sum(1).mean()
    metrics["actor_critic/policy_entropy"] = rollout["entropies"].mean().detach()
    return metrics
