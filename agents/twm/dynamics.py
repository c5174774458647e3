"""Dynamics model: Transformer-XL over interleaved (z, a, r) tokens with latent/reward/discount heads (spec §5).

Token stream: z_0, a_0, r_0, z_1, a_1, r_1, ... ; every sequence handed to the Transformer (memory
plus new tokens) starts at a z token, so position p belongs to step p // 3 with modality p % 3
(0 = z, 1 = a, 2 = r). h_t is the output at the action token a_t.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import TWMConfig
from .nets import MLP
from .transformer import TransformerXL

LOG_2PI = math.log(2.0 * math.pi)


def attention_mask(num_tokens: int, num_queries: int, ends: torch.Tensor, memory_length: int) -> torch.Tensor:
    """allowed[b, i, j] for the last `num_queries` of `num_tokens` tokens (spec §5.4).

    Causal; z/a tokens see the previous 3·(memory_length+1) tokens, r tokens their own step's z, a
    and `memory_length` steps before; no attention from step t to step j if an end flag is set at
    some step k with j <= k < t. `ends` [B, n] holds the flags of steps 0..n-1 (n >= steps - 1).
    """
    device = ends.device
    key = torch.arange(num_tokens, device=device)
    query = key[num_tokens - num_queries:]
    query_step, key_step = query // 3, key // 3
    lowest = torch.where(query % 3 < 2, query - 3 * (memory_length + 1), 3 * (query_step - memory_length))
    allowed = (key[None, :] <= query[:, None]) & (key[None, :] >= lowest[:, None])
    num_steps = (num_tokens + 2) // 3
    if ends.shape[1] < num_steps - 1:
        raise ValueError(f"attention_mask: {num_tokens} tokens span {num_steps} steps; need >= {num_steps - 1} "
                         f"end flags, got {ends.shape[1]}")
    flags = ends[:, : num_steps - 1].long()
    segment = torch.cat([torch.zeros_like(flags[:, :1]), flags.cumsum(1)], dim=1)  # ends strictly before a step
    same_episode = segment[:, query_step, None] == segment[:, None, key_step]
    return allowed[None] & same_episode


class DynamicsModel(nn.Module):
    def __init__(self, config: TWMConfig, num_actions: int):
        super().__init__()
        self.config = config
        dim, dropout = config.dyn_embed_dim, config.dyn_dropout
        self.z_embed = MLP(config.z_dim, (), dim, post_activation=True)
        self.a_embed = nn.Embedding(num_actions, dim)
        self.r_embed = MLP(1, (), dim, post_activation=True)
        max_distance = max(config.max_distance, 3 * (config.wm_sequence_length + 1) + 2)
        self.transformer = TransformerXL(dim, config.dyn_num_layers, config.dyn_num_heads, config.dyn_head_dim,
                                         config.dyn_feedforward_dim, dropout, max_distance)
        self.z_head = MLP(dim, config.dyn_z_dims, config.z_dim, dropout=dropout, pre_activation=True)
        self.r_head = MLP(dim, config.dyn_reward_dims, 1, dropout=dropout, pre_activation=True, final_bias=0.0)
        self.g_head = MLP(dim, config.dyn_discount_dims, 1, dropout=dropout, pre_activation=True,
                          final_bias=config.gamma)

    # ---- tokens -------------------------------------------------------------------------------
    def tokens(self, z: torch.Tensor, a: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """z [B, T, zdim], a [B, T], r [B, T-1] -> [B, 3T-1, D] (no reward token after the last action)."""
        batch, steps = a.shape
        ze, ae = self.z_embed(z), self.a_embed(a)
        re = self.r_embed(r.unsqueeze(-1))
        full = torch.stack([ze[:, :-1], ae[:, :-1], re], dim=2).reshape(batch, 3 * (steps - 1), -1)
        return torch.cat([full, ze[:, -1:], ae[:, -1:]], dim=1)

    def heads(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """h [..., D] -> (next-latent log-probs [..., K, C], reward mean [...], discount logit [...])."""
        logits = self.z_head(h).unflatten(-1, (self.config.z_categoricals, self.config.z_categories))
        return F.log_softmax(logits, -1), self.r_head(h).squeeze(-1), self.g_head(h).squeeze(-1)

    # ---- full-sequence forward (training) -----------------------------------------------------
    def forward_sequence(self, z: torch.Tensor, a: torch.Tensor, r: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
        """h [B, T, D] at every action token; ends [B, T-1] are the end flags of steps 0..T-2."""
        x = self.tokens(z, a, r)
        allowed = attention_mask(x.shape[1], x.shape[1], ends, self.config.wm_memory_length)
        out, _ = self.transformer(x, allowed)
        return out[:, 1::3]

    # ---- incremental forward (imagination) ----------------------------------------------------
    def start(self, z: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Feeds (z_0, a_0) of each row [B, zdim], [B]; returns h_0 [B, D] and the memory."""
        x = torch.stack([self.z_embed(z), self.a_embed(a)], dim=1)
        allowed = torch.ones(z.shape[0], 2, 2, dtype=torch.bool, device=z.device).tril()
        out, memory = self.transformer(x, allowed)
        return out[:, 1], memory

    def step(self, memory: list[torch.Tensor], ends: torch.Tensor, r_prev: torch.Tensor, z: torch.Tensor,
             a: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Feeds (r_{t-1}, z_t, a_t) after the memory; `ends` [B, steps in memory] are their end flags.

        Returns h_t [B, D] and the memory truncated to the last `memory_tokens` tokens.
        """
        x = torch.stack([self.r_embed(r_prev.unsqueeze(-1)), self.z_embed(z), self.a_embed(a)], dim=1)
        num_tokens = memory[0].shape[1] + 3
        allowed = attention_mask(num_tokens, 3, ends, self.config.wm_memory_length)
        out, new_memory = self.transformer(x, allowed, memory)
        keep = self.config.memory_tokens
        return out[:, -1], [m[:, -keep:] for m in new_memory]

    # ---- loss (spec §5.5) ----------------------------------------------------------------------
    def loss(self, h: torch.Tensor, target_log_probs: torch.Tensor, target_r: torch.Tensor,
             target_g: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """h [B, T, D]; targets [B, T, K, C] log-probs, [B, T] rewards, discounts and latent weights."""
        c = self.config
        z_log_probs, r_mean, g_logit = self.heads(h)
        cross_entropy = -(target_log_probs.exp() * z_log_probs).sum(-1).sum(-1)
        z_loss = c.dyn_z_coef * (weights * cross_entropy).sum() / weights.sum().clamp_min(1.0)
        r_loss = c.dyn_reward_coef * (0.5 * (target_r - r_mean).pow(2) + 0.5 * LOG_2PI).mean()
        g_loss = c.dyn_discount_coef * F.binary_cross_entropy_with_logits(g_logit, target_g)
        total = z_loss + r_loss + g_loss
        metrics = {"dyn_z_loss": z_loss.detach(), "dyn_reward_loss": r_loss.detach(),
                   "dyn_discount_loss": g_loss.detach(), "dyn_loss": total.detach()}
        return total, metrics
