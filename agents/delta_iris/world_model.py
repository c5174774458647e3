"""World model G over blocks [Ĩ_t, a_t, z_{t+1}^1..z_{t+1}^K] with continuous I-tokens (spec §5).

Ĩ_t is a CNN embedding of frame x_t (flattened in (h, w, c) order, LayerNorm), trained end to end by
G's losses. Heads read the action slot (reward, termination) and the action plus the first K-1
Δ-token slots (next Δ-token).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from agents.common.twohot import SymlogTwoHot
from agents.delta_iris.config import WorldModelConfig
from agents.delta_iris.nets import FrameEncoder, init_linear_embedding, latent_resolution
from agents.delta_iris.transformer import KVCache, Transformer


def _head(embed_dim: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, out))


@dataclass
class BlockOutputs:
    """Head logits of a full training sequence of T blocks."""

    latents: torch.Tensor  # [B, T, K, vocab]: prediction of z_{t+1}^k from slot k (action, z^1..z^{K-1})
    rewards: torch.Tensor  # [B, T, 255 or 3]
    ends: torch.Tensor  # [B, T, 2]


class WorldModel(nn.Module):
    def __init__(self, config: WorldModelConfig, num_actions: int, vocab_size: int, num_tokens: int,
                 image_channels: int = 3, image_size: int = 64):
        super().__init__()
        self.config = config
        self.num_tokens = num_tokens
        self.tokens_per_block = 2 + num_tokens
        e = config.embed_dim
        itoken_size = latent_resolution(image_size, config.itoken_cnn) ** 2 * config.itoken_cnn.latent_dim
        if itoken_size != e:
            raise ValueError(f"world_model: I-token CNN gives {itoken_size} dims, embed_dim is {e}")
        self.transformer = Transformer(self.tokens_per_block * config.max_blocks, config.num_layers, config.num_heads, e)
        self.frame_cnn = FrameEncoder(image_channels, config.itoken_cnn)
        self.frame_ln = nn.LayerNorm(e)
        self.action_emb = nn.Embedding(num_actions, e)
        self.latent_emb = nn.Embedding(vocab_size, e)
        self.head_latents = _head(e, vocab_size)
        self.head_rewards = _head(e, 255 if config.two_hot_rewards else 3)
        self.head_ends = _head(e, 2)
        self.apply(init_linear_embedding)
        self.reward_codec = SymlogTwoHot() if config.two_hot_rewards else None

    def itokens(self, frames: torch.Tensor) -> torch.Tensor:
        """I-tokens [B, T, E] of frames [B, T, C, H, W] in [0, 1]."""
        b, t = frames.shape[:2]
        z = self.frame_cnn(frames.flatten(0, 1))
        return self.frame_ln(z.permute(0, 2, 3, 1).reshape(b, t, -1))

    def embed_blocks(self, frames: torch.Tensor, actions: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """[Ĩ_t, a_t, z_{t+1}^{1..K}] for t < T, flattened to [B, T * (2 + K), E] (tokens [B, T, K])."""
        blocks = torch.cat((self.itokens(frames).unsqueeze(2), self.action_emb(actions).unsqueeze(2),
                            self.latent_emb(tokens)), dim=2)
        return blocks.flatten(1, 2)

    def forward(self, sequence: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        return self.transformer(sequence, cache)

    def block_heads(self, outputs: torch.Tensor) -> BlockOutputs:
        """Head logits from transformer outputs of whole blocks [B, T * (2 + K), E]."""
        b = outputs.shape[0]
        blocks = outputs.reshape(b, -1, self.tokens_per_block, outputs.shape[-1])
        return BlockOutputs(self.head_latents(blocks[:, :, 1:-1]), self.head_rewards(blocks[:, :, 1]),
                            self.head_ends(blocks[:, :, 1]))

    def compute_loss(self, frames: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, ends: torch.Tensor,
                     tokens: torch.Tensor, step_mask: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Losses on a segment: frames [B,T,C,H,W], actions/rewards/ends/step_mask [B,T], Δ-tokens [B,T-1,K].

        Padding is embedded and attended to like real frames, and only excluded from the losses.
        Δ-token targets count where the pair's earlier frame has a real step (the official masking).
        """
        b, _, k = tokens.shape
        full_tokens = torch.cat((tokens, tokens.new_zeros(b, 1, k)), dim=1)  # last block: no targets
        heads = self.block_heads(self(self.embed_blocks(frames, actions, full_tokens)))
        pair_mask = step_mask[:, :-1]
        logits_latents = heads.latents[:, :-1][pair_mask].flatten(0, 1).float()
        labels_latents = tokens[pair_mask].flatten()
        loss_latents = F.cross_entropy(logits_latents, labels_latents)
        if self.reward_codec is not None:
            loss_rewards = self.reward_codec.loss(heads.rewards[step_mask], rewards[step_mask])
        else:
            loss_rewards = F.cross_entropy(heads.rewards[step_mask].float(), (rewards[step_mask].sign() + 1).long())
        loss_ends = F.cross_entropy(heads.ends[step_mask].float(), ends[step_mask].long())
        cfg = self.config
        losses = {"latents_loss": cfg.latents_weight * loss_latents, "rewards_loss": cfg.rewards_weight * loss_rewards,
                  "ends_loss": cfg.ends_weight * loss_ends}
        total = sum(losses.values())
        accuracy = (logits_latents.argmax(-1) == labels_latents).float().mean()
        metrics = {name: v.detach() for name, v in losses.items()} | {"latent_accuracy": accuracy}
        return total, metrics
