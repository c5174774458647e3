"""Batched imagination with the world model and its key/value cache (spec §5.4, §6.2).

`WorldModelEnv.reset(frames)` encodes real frames, primes the cache with their tokens and returns the
reconstructions (what the policy sees first). `step(actions, predict_next)` feeds the action token,
samples reward sign and termination from its outputs, then (if `predict_next`) samples the next
frame's K tokens one at a time, feeding each back (K + 1 forward passes), and decodes them.
All sampling stays on the device (no host round trips). Callers use no_grad and eval mode.
"""
from __future__ import annotations

import torch

from agents.common.transformer import KVCache
from agents.iris.tokenizer import Tokenizer
from agents.iris.world_model import WorldModel


def sample_logits(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Categorical sample over the last dim (temperature 1) → int64 [...]."""
    probs = logits.float().softmax(-1)
    flat = probs.reshape(-1, probs.size(-1))
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])


class WorldModelEnv:
    def __init__(self, tokenizer: Tokenizer, world_model: WorldModel, generator: torch.Generator | None = None):
        self.tokenizer, self.world_model, self.generator = tokenizer, world_model, generator
        self.cache: KVCache | None = None
        self.frame_tokens: torch.Tensor | None = None  # [B, K] tokens of the current frame
        self.cache_refreshes = 0  # times the cache was reset because it was full

    @torch.no_grad()
    def reset(self, frames: torch.Tensor) -> torch.Tensor:
        """frames [B, 3, H, W] in [0, 1] → reconstructed frames; primes the cache."""
        tokens = self.tokenizer.encode(frames).tokens
        self.cache = self.world_model.empty_cache(frames.size(0), frames.device)
        return self.reset_from_tokens(tokens)

    @torch.no_grad()
    def reset_from_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.cache is None or self.cache.keys[0].size(0) != tokens.size(0):
            self.cache = self.world_model.empty_cache(tokens.size(0), tokens.device)
        self.cache.reset()
        self.world_model(tokens, self.cache)
        self.frame_tokens = tokens
        return self.tokenizer.decode_tokens(tokens)

    @torch.no_grad()
    def step(self, actions: torch.Tensor, predict_next: bool = True
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """actions [B] → (rewards in {-1,0,1} [B], ends in {0,1} [B], next frames [B,3,H,W] or None)."""
        assert self.cache is not None and self.frame_tokens is not None, "reset() first"
        k = self.world_model.tokens_per_frame
        needed = 1 + (k if predict_next else 0)
        if self.cache.size + needed > self.cache.capacity:
            self.cache_refreshes += 1
            self.reset_from_tokens(self.frame_tokens)
        out = self.world_model(actions.long().unsqueeze(1), self.cache)
        rewards = sample_logits(out.reward_logits[:, -1], self.generator).float() - 1.0
        ends = sample_logits(out.end_logits[:, -1], self.generator)
        if not predict_next:
            return rewards, ends, None
        tokens = []
        token = sample_logits(out.next_token_logits[:, -1], self.generator)
        for index in range(k):
            tokens.append(token)
            out = self.world_model(token.unsqueeze(1), self.cache)
            if index < k - 1:
                token = sample_logits(out.next_token_logits[:, -1], self.generator)
        self.frame_tokens = torch.stack(tokens, dim=1)
        return rewards, ends, self.tokenizer.decode_tokens(self.frame_tokens)
