"""Pre-LN causal transformer with learned absolute positions and a preallocated key/value cache (spec §5.1).

Kept here rather than in agents/common because Δ-IRIS's layer has separate q, k, v Linear(E, E) with
bias, one learned position per token of `max_tokens`, and a cache that is filled across calls
(burn-in sequence, then one token or a few at a time during imagination).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class KVCache:
    """Keys and values of every layer, [B, heads, max_tokens, head_dim], filled left to right."""

    def __init__(self, num_layers: int, batch: int, heads: int, max_tokens: int, head_dim: int,
                 device: torch.device, dtype: torch.dtype):
        shape = (batch, heads, max_tokens, head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(num_layers)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(num_layers)]
        self.size = 0
        self.max_tokens = max_tokens


class SelfAttention(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"world_model.embed_dim={embed_dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.ln = nn.LayerNorm(embed_dim)
        self.query = nn.Linear(embed_dim, embed_dim)
        self.key = nn.Linear(embed_dim, embed_dim)
        self.value = nn.Linear(embed_dim, embed_dim)
        self.proj = nn.Linear(embed_dim, embed_dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, e = x.shape
        return x.view(b, t, self.num_heads, e // self.num_heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, cache: KVCache | None, layer: int) -> torch.Tensor:
        b, t, e = x.shape
        h = self.ln(x)
        q, k, v = self._heads(self.query(h)), self._heads(self.key(h)), self._heads(self.value(h))
        past = 0
        if cache is not None:
            past = cache.size
            cache.keys[layer][:, :, past : past + t] = k.to(cache.keys[layer].dtype)
            cache.values[layer][:, :, past : past + t] = v.to(cache.values[layer].dtype)
            k = cache.keys[layer][:, :, : past + t].to(q.dtype)
            v = cache.values[layer][:, :, : past + t].to(q.dtype)
        rows = torch.arange(past, past + t, device=x.device).unsqueeze(1)
        mask = torch.arange(past + t, device=x.device).unsqueeze(0) <= rows  # causal at token level
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return x + self.proj(y.transpose(1, 2).reshape(b, t, e))


class MLP(nn.Module):
    def __init__(self, embed_dim: int):
        super().__init__()
        self.ln = nn.LayerNorm(embed_dim)
        self.net = nn.Sequential(nn.Linear(embed_dim, 4 * embed_dim), nn.GELU(), nn.Linear(4 * embed_dim, embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(self.ln(x))


class Transformer(nn.Module):
    """Embedded tokens [B, T, E] -> final-LayerNorm outputs [B, T, E]; positions continue from the cache."""

    def __init__(self, max_tokens: int, num_layers: int, num_heads: int, embed_dim: int):
        super().__init__()
        self.max_tokens = max_tokens
        self.num_heads = num_heads
        self.pos_emb = nn.Embedding(max_tokens, embed_dim)
        self.attention = nn.ModuleList([SelfAttention(embed_dim, num_heads) for _ in range(num_layers)])
        self.mlp = nn.ModuleList([MLP(embed_dim) for _ in range(num_layers)])
        self.ln = nn.LayerNorm(embed_dim)

    def new_cache(self, batch: int, dtype: torch.dtype | None = None) -> KVCache:
        e = self.pos_emb.embedding_dim
        return KVCache(len(self.attention), batch, self.num_heads, self.max_tokens, e // self.num_heads,
                       self.ln.weight.device, dtype or self.ln.weight.dtype)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        past = cache.size if cache is not None else 0
        if past + x.shape[1] > self.max_tokens:
            raise ValueError(f"sequence of {past + x.shape[1]} tokens exceeds max_tokens={self.max_tokens}")
        y = x + self.pos_emb(torch.arange(past, past + x.shape[1], device=x.device))
        for layer, (attention, mlp) in enumerate(zip(self.attention, self.mlp)):
            y = mlp(attention(y, cache, layer))
        if cache is not None:
            cache.size = past + x.shape[1]
        return self.ln(y)
