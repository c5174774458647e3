"""GPT-style pre-LN causal transformer with a key/value cache (IRIS §5.1, Δ-IRIS §5.1).

Block: `x = x + Dropout(Proj(Attn(LN(x)))); x = x + Dropout(MLP(LN(x)))`, MLP = Linear(E, 4E) →
GELU (exact erf) → Linear(4E, E); separate q/k/v/proj Linear(E, E) with bias; attention-probability
dropout; dropout on the input embeddings; a final LayerNorm. Attention is causal at token level.
Initialisation (`init_gpt_weights`): Linear/Embedding N(0, 0.02), biases 0, LayerNorm (1, 0).

Cache API:
    cache = transformer.empty_cache(batch_size, capacity, device)   # KVCache, size 0
    y = transformer(x, cache)   # x [B, T, E] holds the next T tokens; their keys/values are appended,
                                # and token i attends to every cached token and to new tokens <= i
    cache.size                  # tokens held; cache.reset() empties it (keeps the buffers)
Feeding a sequence in several chunks through one cache gives the same outputs as one uncached call
(eval mode). Appending past `capacity` raises an error; callers reset and re-prime (IRIS §5.4).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class TransformerConfig:
    embed_dim: int  # width E
    num_layers: int  # number of blocks
    num_heads: int  # attention heads (E must be divisible)
    max_tokens: int  # context length in tokens (size of the positional table / default cache capacity)
    embed_dropout: float = 0.1  # dropout on the summed input embeddings
    attn_dropout: float = 0.1  # dropout on attention probabilities
    resid_dropout: float = 0.1  # dropout after the attention projection and after the MLP


class KVCache:
    """Per-layer key/value buffers [B, heads, capacity, head_dim] and the number of tokens held."""

    def __init__(self, num_layers: int, batch_size: int, num_heads: int, head_dim: int, capacity: int,
                 device: torch.device | str, dtype: torch.dtype = torch.float32):
        shape = (batch_size, num_heads, capacity, head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(num_layers)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(num_layers)]
        self.capacity = capacity
        self.size = 0
        self._pending = 0  # tokens being appended by the forward pass in progress

    def reset(self) -> None:
        self.size = 0

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stores k/v [B, heads, T, hd] of one layer after the cached ones; returns all keys/values so far."""
        start, stop = self.size, self.size + k.size(2)
        if stop > self.capacity:
            raise RuntimeError(f"KVCache overflow: holds {self.size} tokens, capacity {self.capacity}, "
                               f"appending {k.size(2)}; reset the cache first")
        self.keys[layer][:, :, start:stop] = k
        self.values[layer][:, :, start:stop] = v
        self._pending = k.size(2)
        return self.keys[layer][:, :, :stop], self.values[layer][:, :, :stop]

    def commit(self) -> None:
        self.size += self._pending
        self._pending = 0


class SelfAttention(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        if config.embed_dim % config.num_heads:
            raise ValueError(f"TransformerConfig: embed_dim {config.embed_dim} not divisible by "
                             f"num_heads {config.num_heads}")
        self.num_heads = config.num_heads
        self.key = nn.Linear(config.embed_dim, config.embed_dim)
        self.query = nn.Linear(config.embed_dim, config.embed_dim)
        self.value = nn.Linear(config.embed_dim, config.embed_dim)
        self.proj = nn.Linear(config.embed_dim, config.embed_dim)
        self.attn_dropout = config.attn_dropout
        self.resid_drop = nn.Dropout(config.resid_dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, e = x.shape
        return x.view(b, t, self.num_heads, e // self.num_heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        b, t, e = x.shape
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        past = 0
        if cache is not None:
            past = cache.size
            k, v = cache.append(layer, k.to(cache.keys[layer].dtype), v.to(cache.values[layer].dtype))
            k, v = k.to(q.dtype), v.to(q.dtype)
        # Token i (absolute position past + i) sees keys 0..past + i.
        mask = None
        if t > 1:
            mask = torch.ones(t, past + t, dtype=torch.bool, device=x.device).tril(diagonal=past)
        dropout = self.attn_dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        y = y.transpose(1, 2).reshape(b, t, e)
        return self.resid_drop(self.proj(y))


class Block(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.embed_dim)
        self.ln2 = nn.LayerNorm(config.embed_dim)
        self.attn = SelfAttention(config)
        self.mlp = nn.Sequential(nn.Linear(config.embed_dim, 4 * config.embed_dim), nn.GELU(),
                                 nn.Linear(4 * config.embed_dim, config.embed_dim), nn.Dropout(config.resid_dropout))

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache, layer)
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    """Blocks over already-embedded tokens [B, T, E] (embeddings and positions are the caller's)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.drop = nn.Dropout(config.embed_dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.ln_f = nn.LayerNorm(config.embed_dim)

    def empty_cache(self, batch_size: int, capacity: int | None = None, device: torch.device | str | None = None,
                    dtype: torch.dtype = torch.float32) -> KVCache:
        device = device if device is not None else self.ln_f.weight.device
        head_dim = self.config.embed_dim // self.config.num_heads
        return KVCache(self.config.num_layers, batch_size, self.config.num_heads, head_dim,
                       capacity or self.config.max_tokens, device, dtype)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        x = self.drop(x)
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer)
        if cache is not None:
            cache.commit()
        return self.ln_f(x)


def init_gpt_weights(module: nn.Module) -> None:
    """GPT/IRIS init, for `model.apply(init_gpt_weights)`."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        module.weight.data.normal_(mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()
    elif isinstance(module, nn.LayerNorm):
        module.bias.data.zero_()
        module.weight.data.fill_(1.0)


def positions(cache: KVCache | None, num_tokens: int, device: torch.device) -> torch.Tensor:
    """Absolute positions [T] of the next `num_tokens` tokens given what the cache holds."""
    start = 0 if cache is None else cache.size
    return torch.arange(start, start + num_tokens, device=device)


__all__ = ["TransformerConfig", "KVCache", "Transformer", "Block", "SelfAttention", "init_gpt_weights",
           "positions"]
