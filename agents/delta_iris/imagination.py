"""Batched imagination with the tokenizer and world model (spec §5.4), entirely on the device.

reset(): real frames x_0..x_n and the n actions between them -> Δ-tokens z_1..z_n from the
tokenizer, then G reads [Ĩ_0, a_0, z_1, ..., Ĩ_{n-1}, a_{n-1}, z_n, Ĩ_n] into its KV cache.
step(a_t): G reads a_t (first step) or [z_t^K (deferred), Ĩ_t, a_t]; reward and termination come from
the action slot, z_{t+1}^1..K are sampled autoregressively, and x̂_{t+1} = D(x_t, a_t, z_{t+1}).
"""
from __future__ import annotations

import torch

from agents.delta_iris.tokenizer import Tokenizer
from agents.delta_iris.transformer import KVCache
from agents.delta_iris.world_model import WorldModel


def sample_categorical(logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One sample per row of logits [..., n] (temperature 1), as int64 [...]."""
    probs = logits.float().softmax(-1)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])


class Imagination:
    """A batch of imagined environments. Call under torch.no_grad() with both models in eval mode."""

    def __init__(self, tokenizer: Tokenizer, world_model: WorldModel, generator: torch.Generator | None = None):
        self.tokenizer = tokenizer
        self.world_model = world_model
        self.generator = generator
        self.cache: KVCache | None = None
        self.frame: torch.Tensor | None = None  # current frame [B, C, H, W]
        self.pending: torch.Tensor | None = None  # [z^K emb, Ĩ] of the last step, fed with the next action
        self.current_itoken: torch.Tensor | None = None

    @torch.no_grad()
    def reset(self, frames: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """frames [B, n+1, C, H, W] in [0, 1], actions [B, n]; returns the start frame x_n [B, C, H, W]."""
        wm = self.world_model
        if frames.shape[1] != actions.shape[1] + 1:
            raise ValueError(f"Imagination.reset: {frames.shape[1]} frames need {frames.shape[1] - 1} actions, "
                             f"got {actions.shape[1]}")
        self.cache = wm.transformer.new_cache(frames.shape[0], dtype=self._cache_dtype())
        itokens = wm.itokens(frames)
        if actions.shape[1] > 0:
            tokens = self.tokenizer.encode(frames[:, :-1], actions, frames[:, 1:]).tokens
            blocks = torch.cat((itokens[:, :-1].unsqueeze(2), wm.action_emb(actions).unsqueeze(2),
                                wm.latent_emb(tokens)), dim=2).flatten(1, 2)
            sequence = torch.cat((blocks, itokens[:, -1:]), dim=1)
        else:
            sequence = itokens[:, -1:]
        wm(sequence, self.cache)
        self.frame = frames[:, -1]
        self.current_itoken = itokens[:, -1:]
        self.pending = None
        return self.frame

    def _cache_dtype(self) -> torch.dtype:
        if torch.is_autocast_enabled() and self.world_model.transformer.ln.weight.is_cuda:
            return torch.get_autocast_dtype("cuda")
        return self.world_model.transformer.ln.weight.dtype

    @torch.no_grad()
    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """action [B] int64 -> (next frame [B, C, H, W], reward [B] float, end [B] bool)."""
        assert self.cache is not None and self.frame is not None, "call reset() first"
        wm, per_block = self.world_model, self.world_model.tokens_per_block
        # Never in training: the agent requires burn_in + H + 1 <= max_blocks.
        if (self.cache.max_tokens - self.cache.size) / per_block <= 1:
            self.cache = wm.transformer.new_cache(self.frame.shape[0], dtype=self._cache_dtype())
            self.pending = self.current_itoken
        action_emb = wm.action_emb(action).unsqueeze(1)
        inputs = action_emb if self.pending is None else torch.cat((self.pending, action_emb), dim=1)
        out = wm(inputs, self.cache)[:, -1]
        reward_logits = wm.head_rewards(out)
        if wm.reward_codec is not None:
            reward = wm.reward_codec.predict(reward_logits)
        else:
            reward = sample_categorical(reward_logits, self.generator).float() - 1
        end = sample_categorical(wm.head_ends(out), self.generator).bool()
        tokens = [sample_categorical(wm.head_latents(out), self.generator)]
        for _ in range(wm.num_tokens - 1):
            out = wm(wm.latent_emb(tokens[-1]).unsqueeze(1), self.cache)[:, -1]
            tokens.append(sample_categorical(wm.head_latents(out), self.generator))
        token_grid = torch.stack(tokens, dim=-1).unsqueeze(1)  # [B, 1, K]
        frame = self.tokenizer.decode_tokens(self.frame.unsqueeze(1), action.unsqueeze(1), token_grid)[:, 0]
        self.frame = frame.float()
        self.current_itoken = wm.itokens(self.frame.unsqueeze(1))
        self.pending = torch.cat((wm.latent_emb(tokens[-1]).unsqueeze(1), self.current_itoken), dim=1)
        return self.frame, reward.float(), end
