"""IRIS world model (spec §5): GPT over [16 frame tokens, action] blocks with three heads.

Sequence layout per timestep t: z_t^1 … z_t^K, a_t (K + 1 tokens). The token at in-block position
p < K is a frame token (frame embedding table), position K is the action (action table).
Heads read, within each block: next-token at every position except the K-th frame token; reward
(3 sign classes) and termination (2 classes) at the action token.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from agents.common.transformer import KVCache, Transformer, TransformerConfig, init_gpt_weights
from agents.iris.config import WorldModelConfig


def _head(width: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, out))


@dataclass
class WorldModelOutput:
    """Per-position outputs for the tokens just fed (absolute positions start..start+T-1)."""

    next_token_logits: torch.Tensor  # [B, T, N] (meaningful at positions the head reads)
    reward_logits: torch.Tensor  # [B, T, 3] (meaningful at action positions)
    end_logits: torch.Tensor  # [B, T, 2] (meaningful at action positions)


@dataclass
class WorldModelLosses:
    next_token: torch.Tensor
    reward: torch.Tensor
    end: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.next_token + self.reward + self.end


class WorldModel(nn.Module):
    def __init__(self, cfg: WorldModelConfig, vocab_size: int, tokens_per_frame: int, num_actions: int):
        super().__init__()
        self.cfg = cfg
        self.tokens_per_frame = tokens_per_frame
        self.block_size = tokens_per_frame + 1
        self.max_tokens = cfg.max_blocks * self.block_size
        self.transformer = Transformer(TransformerConfig(cfg.embed_dim, cfg.num_layers, cfg.num_heads, self.max_tokens,
                                                         cfg.embed_dropout, cfg.attn_dropout, cfg.resid_dropout))
        self.pos_emb = nn.Embedding(self.max_tokens, cfg.embed_dim)
        self.frame_emb = nn.Embedding(vocab_size, cfg.embed_dim)
        self.action_emb = nn.Embedding(num_actions, cfg.embed_dim)
        self.head_observations = _head(cfg.embed_dim, vocab_size)
        self.head_rewards = _head(cfg.embed_dim, 3)
        self.head_ends = _head(cfg.embed_dim, 2)
        self.apply(init_gpt_weights)

    def empty_cache(self, batch_size: int, device: torch.device | str | None = None) -> KVCache:
        return self.transformer.empty_cache(batch_size, self.max_tokens, device)

    def forward(self, tokens: torch.Tensor, cache: KVCache | None = None) -> WorldModelOutput:
        """tokens [B, T] (frame ids and action ids interleaved per the layout), continuing the cache."""
        start = 0 if cache is None else cache.size
        num = tokens.size(1)
        if start + num > self.max_tokens:
            raise RuntimeError(f"WorldModel: {start} + {num} tokens exceed the context of {self.max_tokens}")
        positions = torch.arange(start, start + num, device=tokens.device)
        is_action = (positions % self.block_size) == self.tokens_per_frame
        frame_ids = torch.where(is_action, torch.zeros_like(tokens), tokens)
        action_ids = torch.where(is_action, tokens, torch.zeros_like(tokens))
        embedded = torch.where(is_action.view(1, -1, 1), self.action_emb(action_ids), self.frame_emb(frame_ids))
        x = self.transformer(embedded + self.pos_emb(positions), cache)
        return WorldModelOutput(self.head_observations(x), self.head_rewards(x), self.head_ends(x))

    def interleave(self, frame_tokens: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """frame tokens [B, T, K] and actions [B, T] → [B, T·(K+1)] sequence."""
        return torch.cat([frame_tokens, actions.unsqueeze(-1)], dim=-1).flatten(1)

    def loss(self, frame_tokens: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, ends: torch.Tensor,
             valid: torch.Tensor) -> WorldModelLosses:
        """Spec §5.3. frame_tokens [B, T, K], actions/rewards/ends/valid [B, T]; valid = real step."""
        b, t, k = frame_tokens.shape
        out = self(self.interleave(frame_tokens, actions))
        # Next-token targets: the sequence shifted by one; targets of padded frames and action
        # targets are ignored, so the head is trained exactly at the positions it is read.
        sequence = self.interleave(frame_tokens, actions)
        target_is_frame = torch.ones(t, k + 1, dtype=torch.bool, device=frame_tokens.device)
        target_is_frame[:, k] = False
        target_is_frame = target_is_frame.flatten()
        frame_valid = valid.unsqueeze(-1).expand(b, t, k + 1).flatten(1)
        targets = torch.where(target_is_frame & frame_valid, sequence, torch.full_like(sequence, -100))
        logits = out.next_token_logits[:, :-1]
        next_token = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets[:, 1:].reshape(-1),
                                     ignore_index=-100)
        action_positions = out.reward_logits.view(b, t, k + 1, 3)[:, :, k]
        end_logits = out.end_logits.view(b, t, k + 1, 2)[:, :, k]
        reward_target = torch.where(valid, torch.sign(rewards).long() + 1, torch.full_like(actions, -100))
        end_target = torch.where(valid, ends.long(), torch.full_like(actions, -100))
        reward = F.cross_entropy(action_positions.reshape(-1, 3), reward_target.reshape(-1), ignore_index=-100)
        end = F.cross_entropy(end_logits.reshape(-1, 2), end_target.reshape(-1), ignore_index=-100)
        return WorldModelLosses(next_token, reward, end)
