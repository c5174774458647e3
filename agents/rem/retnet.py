"""RetNet decoder layers (yet-another-retnet layout, spec §5.2) and the POP forward (spec §5.4)."""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from agents.rem.retention import MultiScaleRetention


class RetNetLayer(nn.Module):
    """Pre-LN layer: X += Drop(MSR(LN1 X)); X += Drop(W2 Drop(SiLU(W1 LN2 X)))."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.retention = MultiScaleRetention(dim, num_heads, dropout)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.linear1, self.linear2 = nn.Linear(dim, ffn_dim), nn.Linear(ffn_dim, dim)
        self.dropout = nn.Dropout(dropout)
        for linear in (self.linear1, self.linear2):
            nn.init.xavier_normal_(linear.weight)
            nn.init.zeros_(linear.bias)

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.dropout(self.linear2(self.dropout(F.silu(self.linear1(self.norm2(x))))))

    def forward(self, x: torch.Tensor, state: torch.Tensor, positions: torch.Tensor, mode: str = "chunkwise",
                block_len: int | None = None):
        """Same returns as MultiScaleRetention.forward, with the layer output in place of the MSR output."""
        out, *states = self.retention(self.norm1(x), state, positions, mode, block_len)
        return (self._ffn(x + self.dropout(out)), *states)


class RetNet(nn.Module):
    """A stack of identical-at-init layers (the library deep-copies one layer), no final norm."""

    def __init__(self, num_layers: int, dim: int, num_heads: int, ffn_dim: int, dropout: float):
        super().__init__()
        layer = RetNetLayer(dim, num_heads, ffn_dim, dropout)
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.num_heads, self.head_dim = num_heads, dim // num_heads

    def empty_state(self, batch: int, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Zero state of every layer: [layers, B, heads, head_dim, head_dim]."""
        return torch.zeros(len(self.layers), batch, self.num_heads, self.head_dim, self.head_dim,
                           device=device, dtype=dtype)

    def forward_parallel(self, x: torch.Tensor) -> torch.Tensor:
        """Whole sequence from the zero state at positions 0..T-1."""
        positions = torch.arange(x.shape[1], device=x.device)
        for layer in self.layers:
            x, _ = layer(x, None, positions, "parallel")
        return x

    def _through_layers(self, x: torch.Tensor, states: torch.Tensor, positions: torch.Tensor,
                        mode: str) -> tuple[torch.Tensor, torch.Tensor]:
        """x through every layer in `mode`, each from its own state; returns outputs and the new states."""
        new_states = []
        for layer, state in zip(self.layers, states):
            x, state = layer(x, state, positions, mode)
            new_states.append(state)
        return x, torch.stack(new_states)

    def forward_recurrent(self, x: torch.Tensor, states: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.arange(start, start + x.shape[1], device=x.device)
        return self._through_layers(x, states, positions, "recurrent")

    def forward_chunk(self, x: torch.Tensor, states: torch.Tensor,
                      positions: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
        """One chunk through all layers from `states`; returns outputs and the states after the chunk.

        positions: first absolute position (int) or explicit positions [T] / [B, T].
        """
        if isinstance(positions, int):
            positions = torch.arange(positions, positions + x.shape[1], device=x.device)
        return self._through_layers(x, states, positions, "chunkwise")

    def forward_chunk_blocks(self, x: torch.Tensor, states: torch.Tensor, start: int,
                             block_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stream A of POP for one chunk of whole blocks.

        Returns outputs, the states after the chunk [layers, B, H, D, D] and the per-layer states
        before each block [layers, B, nb, H, D, D].
        """
        positions = torch.arange(start, start + x.shape[1], device=x.device)
        new_states, befores = [], []
        for layer, state in zip(self.layers, states):
            x, state, before = layer(x, state, positions, "chunkwise", block_len)
            new_states.append(state)
            befores.append(before)
        return x, torch.stack(new_states), torch.stack(befores)

    def pop_forward(self, real: torch.Tensor, prediction: torch.Tensor, block_len: int,
                    chunk_blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
        """POP training forward (spec §5.4) over T blocks from the zero state.

        real: [B, T*block_len, dim] embedded real tokens; prediction: [P, dim] prediction tokens
        (P <= block_len). Stream A runs chunkwise over chunks of `chunk_blocks` blocks, keeping each
        layer's state before every block; stream B then runs one copy of the prediction tokens per
        block, at that block's positions, from those states, folded into the batch and never
        updating any state. Returns (stream A outputs [B, T*block_len, dim], stream B [B, T, P, dim]).
        """
        batch, tokens, dim = real.shape
        num_blocks = tokens // block_len
        states = self.empty_state(batch, real.device, real.dtype)
        outs, befores = [], []
        for first in range(0, num_blocks, chunk_blocks):
            last = min(first + chunk_blocks, num_blocks)
            chunk = real[:, first * block_len: last * block_len]
            out, states, before = self.forward_chunk_blocks(chunk, states, first * block_len, block_len)
            outs.append(out)
            befores.append(before)
        block_states = torch.cat(befores, dim=2).flatten(1, 2)  # [layers, B*T, H, D, D]
        num_pred = prediction.shape[0]
        positions = (torch.arange(num_blocks, device=real.device)[:, None] * block_len
                     + torch.arange(num_pred, device=real.device)).repeat(batch, 1)  # [B*T, P]
        pred = prediction.expand(batch * num_blocks, num_pred, dim)
        pred, _ = self.forward_chunk(pred, block_states, positions)
        return torch.cat(outs, dim=1), pred.view(batch, num_blocks, num_pred, dim)
