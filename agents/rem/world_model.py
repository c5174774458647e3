"""REM's world model M: POP-RetNet over blocks of K observation tokens + 1 action token (spec §5-§6)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from agents.rem.config import WorldModelConfig
from agents.rem.retnet import RetNet


def _head(dim: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, out))


@dataclass
class WorldModelOutput:
    obs_logits: torch.Tensor  # [B, T, K, vocab]: stream B, position k of block t predicts z_t^k
    reward_logits: torch.Tensor  # [B, T, 3]: classes sign(r) + 1, at block t's action token
    end_logits: torch.Tensor  # [B, T, 2]: at block t's action token


class POPWorldModel(nn.Module):
    """Observation tokens enter as (detached) codebook vectors; actions and prediction tokens are learned."""

    def __init__(self, cfg: WorldModelConfig, num_actions: int, vocab_size: int, tokens_per_frame: int):
        super().__init__()
        self.cfg, self.num_actions, self.vocab_size = cfg, num_actions, vocab_size
        self.tokens_per_frame = tokens_per_frame
        self.block_len = tokens_per_frame + 1
        # The official table has vocab + A + 1 rows; only the action rows (vocab + a) are ever used.
        # Kept whole so the parameter count matches the official model.
        self.embedding = nn.Embedding(vocab_size + num_actions + 1, cfg.dim)
        # One learned vector per in-block position (65 rows as in the code, spec D8); the action-slot row
        # is never read: its output would be discarded, and by causality it cannot affect the others.
        self.prediction_tokens = nn.Embedding(self.block_len, cfg.dim)
        self.backbone = RetNet(cfg.num_layers, cfg.dim, cfg.num_heads, cfg.ffn_dim, cfg.dropout)
        self.obs_head = _head(cfg.dim, vocab_size)
        self.reward_head = _head(cfg.dim, 3)
        self.end_head = _head(cfg.dim, 2)

    def embed_actions(self, actions: torch.Tensor) -> torch.Tensor:
        return self.embedding(actions + self.vocab_size)

    def embed_blocks(self, tokens: torch.Tensor, actions: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
        """tokens [B, T, K], actions [B, T] -> [B, T*(K+1), dim] laid out z_t^0..z_t^{K-1}, a_t."""
        obs = F.embedding(tokens, codebook.detach())
        blocks = torch.cat([obs, self.embed_actions(actions)[:, :, None]], dim=2)
        return blocks.flatten(1, 2)

    def prediction_inputs(self) -> torch.Tensor:
        return self.prediction_tokens.weight[: self.tokens_per_frame]

    def forward(self, tokens: torch.Tensor, actions: torch.Tensor, codebook: torch.Tensor) -> WorldModelOutput:
        """POP training forward over T blocks from the zero state, chunkwise over `chunk_blocks` blocks."""
        real = self.embed_blocks(tokens, actions, codebook)
        stream_a, stream_b = self.backbone.pop_forward(real, self.prediction_inputs(), self.block_len,
                                                       self.cfg.chunk_blocks)
        action_outputs = stream_a[:, self.tokens_per_frame:: self.block_len]  # [B, T, dim]
        return WorldModelOutput(self.obs_head(stream_b), self.reward_head(action_outputs), self.end_head(action_outputs))

    def loss(self, tokens: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, ends: torch.Tensor,
             valid: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L_M = CE_obs + CE_reward + CE_end over real blocks after the context blocks (spec §5.6).

        valid [B, T]: the block has a real frame and action. ends: the step ended the episode.
        """
        out = self(tokens, actions, codebook)
        mask = valid.clone()
        mask[:, : self.cfg.context_blocks] = False
        if not bool(mask.any()):
            raise ValueError("world-model batch has no real block after the context blocks")
        obs_loss = F.cross_entropy(out.obs_logits[mask].flatten(0, 1), tokens[mask].flatten())
        reward_classes = (torch.sign(rewards) + 1).long()
        reward_loss = F.cross_entropy(out.reward_logits[mask], reward_classes[mask])
        end_loss = F.cross_entropy(out.end_logits[mask], ends.long()[mask])
        total = obs_loss + reward_loss + end_loss
        return total, {"world_model/loss": total.detach(), "world_model/obs_ce": obs_loss.detach(),
                       "world_model/reward_ce": reward_loss.detach(), "world_model/end_ce": end_loss.detach()}

    # ---- imagination: two calls per imagined step (spec §6) ---------------------------------
    def observe(self, inputs: torch.Tensor, states: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Stream A: embedded real tokens from `states` at positions start..; returns (outputs, new states)."""
        return self.backbone.forward_chunk(inputs, states, start)

    def predict_next_logits(self, states: torch.Tensor, start: int) -> torch.Tensor:
        """Stream B: logits [B, K, vocab] of the next frame's tokens from `states`; states are not changed."""
        pred = self.prediction_inputs().expand(states.shape[1], -1, -1)
        out, _ = self.backbone.forward_chunk(pred, states, start)
        return self.obs_head(out)

    def reward_end(self, action_output: torch.Tensor, generator: torch.Generator | None = None,
                   temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled reward in {-1, 0, 1} and end flag in {0, 1} from the action token's output [B, dim]."""
        reward = _sample(self.reward_head(action_output) / temperature, generator).float() - 1
        end = _sample(self.end_head(action_output) / temperature, generator).float()
        return reward, end


def _sample(logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    probs = torch.softmax(logits.float(), dim=-1)
    return torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator).reshape(probs.shape[:-1])
