"""Transformer-XL decoder with relative attention and a per-layer memory (spec §5.2).

Contract: `forward(x [B, Tq, D], allowed [B, Tq, S], memory)` where memory is None or a list of
per-layer *input* hidden states [B, M, D] (M = S - Tq) from earlier calls; query i sits at absolute
position M + i and key j at position j, so the relative distance is M + i - j. Returns the last
layer's outputs [B, Tq, D] and the new memory (inputs of every layer over all S tokens, detached;
the caller keeps the tokens it wants).
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn


def sinusoidal_table(length: int, dim: int) -> torch.Tensor:
    """Rows are distances 0..length-1: sin on even dims, cos on odd dims, base 10000."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table


class RelativeSelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, head_dim: int, dropout: float):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        self.scale = 1.0 / math.sqrt(dim)  # the official code scales by the model width, not the head dim
        self.qkv = nn.Linear(dim, 3 * num_heads * head_dim, bias=False)
        self.pos = nn.Linear(dim, num_heads * head_dim, bias=False)  # W_R
        self.out = nn.Linear(num_heads * head_dim, dim, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, context: torch.Tensor, encodings: torch.Tensor, distance: torch.Tensor,
                allowed: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """x [B, Tq, D] queries; context [B, S, D] = memory + x; encodings [P, D]; distance [Tq, S] long."""
        batch, tq, _ = x.shape
        s = context.shape[1]
        h, d = self.num_heads, self.head_dim
        q, k, val = self.qkv(context).split(h * d, dim=-1)
        q = q[:, -tq:].view(batch, tq, h, d)
        k = k.view(batch, s, h, d)
        val = val.view(batch, s, h, d)
        rel = self.pos(encodings).view(-1, h, d)  # [P, H, d]
        content = torch.einsum("bihd,bjhd->bhij", q + u, k)
        position = torch.einsum("bihd,phd->bhip", q + v, rel)  # score per distance
        position = position.gather(-1, distance.clamp(0, rel.shape[0] - 1).expand(batch, h, tq, s))
        scores = (content + position) * self.scale
        scores = scores.masked_fill(~allowed.unsqueeze(1), float("-inf"))
        attention = self.dropout(scores.softmax(-1))
        out = torch.einsum("bhij,bjhd->bihd", attention, val).reshape(batch, tq, h * d)
        return self.out(out)


class TransformerXLLayer(nn.Module):
    """Post-LayerNorm block: x <- LN1(x + Drop(Attn(x))); x <- LN2(x + Drop(W2 Drop(SiLU(W1 x))))."""

    def __init__(self, dim: int, num_heads: int, head_dim: int, feedforward_dim: int, dropout: float):
        super().__init__()
        self.attention = RelativeSelfAttention(dim, num_heads, head_dim, dropout)
        self.linear1 = nn.Linear(dim, feedforward_dim)
        self.linear2 = nn.Linear(feedforward_dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.act = nn.SiLU()

    def forward(self, x, context, encodings, distance, allowed, u, v):
        x = self.norm1(x + self.dropout(self.attention(x, context, encodings, distance, allowed, u, v)))
        feedforward = self.dropout(self.linear2(self.dropout(self.act(self.linear1(x)))))
        return self.norm2(x + feedforward)


class TransformerXL(nn.Module):
    def __init__(self, dim: int, num_layers: int, num_heads: int, head_dim: int, feedforward_dim: int,
                 dropout: float, max_distance: int):
        super().__init__()
        layer = TransformerXLLayer(dim, num_heads, head_dim, feedforward_dim, dropout)
        # deep copies of one initialised layer: all layers start identical (official code)
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.u = nn.Parameter(torch.empty(num_heads, head_dim))
        self.v = nn.Parameter(torch.empty(num_heads, head_dim))
        nn.init.xavier_uniform_(self.u)
        nn.init.xavier_uniform_(self.v)
        self.register_buffer("encodings", sinusoidal_table(max_distance, dim), persistent=False)
        self.encoding_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, allowed: torch.Tensor,
                memory: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        tq = x.shape[1]
        m = 0 if memory is None else memory[0].shape[1]
        s = m + tq
        if allowed.shape[-2:] != (tq, s):
            raise ValueError(f"TransformerXL: mask shape {tuple(allowed.shape)} != [B, {tq}, {s}]")
        query_position = torch.arange(m, s, device=x.device)
        distance = query_position[:, None] - torch.arange(s, device=x.device)[None, :]
        encodings = self.encoding_dropout(self.encodings)
        new_memory = []
        for index, layer in enumerate(self.layers):
            context = x if memory is None else torch.cat([memory[index], x], dim=1)
            new_memory.append(context.detach())
            x = layer(x, context, encodings, distance, allowed, self.u, self.v)
        return x, new_memory
