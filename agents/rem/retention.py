"""Multi-scale retention exactly as in yet-another-retnet (spec §5.2-5.3), in three equivalent forms.

Per head with decay gamma, rotated queries q and rotated, 1/sqrt(head_dim)-scaled keys k:
  parallel   R = (Q K^T * D) V,  D[n, m] = gamma^(n-m) for n >= m else 0
  recurrent  S_n = gamma S_{n-1} + k_n^T v_n,  r_n = q_n S_n
  chunkwise  R = (Q K^T * D) V + (Q S) * xi,  xi_b = gamma^(b+1);
             S_new = sum_b gamma^(B-1-b) k_b^T v_b + gamma^B S
Tensors are [batch, heads, tokens, head_dim]; states are [batch, heads, head_dim, head_dim].
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def head_decays(num_heads: int) -> torch.Tensor:
    """gamma_h = 1 - exp(linspace(ln 1/32, ln 1/512, heads)) (library rule; spec D2)."""
    return 1.0 - torch.exp(torch.linspace(math.log(1 / 32), math.log(1 / 512), num_heads, dtype=torch.float64))


def rotation_frequencies(head_dim: int) -> torch.Tensor:
    """theta_i = 1 / 10000^linspace(0, 1, head_dim/2), one angle per (2i, 2i+1) pair."""
    return 1.0 / (10000 ** torch.linspace(0, 1, head_dim // 2, dtype=torch.float64))


def rotate(x: torch.Tensor, positions: torch.Tensor, thetas: torch.Tensor) -> torch.Tensor:
    """Rotates pair i of the vector at absolute position n by n*theta_i. positions: [T] or [B, T]."""
    angles = positions.to(torch.float64)[..., None] * thetas  # [(B,) T, D/2]
    if angles.dim() == 3:
        angles = angles[:, None]  # broadcast over heads
    cos = torch.cos(angles).to(x.dtype).repeat_interleave(2, dim=-1)
    sin = torch.sin(angles).to(x.dtype).repeat_interleave(2, dim=-1)
    pairs = x.unflatten(-1, (-1, 2))
    rotated_half = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    return x * cos + rotated_half * sin


def _decay_matrix(gammas: torch.Tensor, length: int, dtype: torch.dtype) -> torch.Tensor:
    n = torch.arange(length, device=gammas.device)
    distance = (n[:, None] - n[None, :]).to(gammas.dtype)
    decay = gammas[:, None, None] ** distance.clamp(min=0)
    return torch.where(distance >= 0, decay, torch.zeros_like(decay)).to(dtype)  # [H, T, T]


def retention_parallel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gammas: torch.Tensor) -> torch.Tensor:
    scores = (q @ k.transpose(-1, -2)) * _decay_matrix(gammas, q.shape[-2], q.dtype)
    return scores @ v


def retention_recurrent(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, state: torch.Tensor,
                        gammas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One token: q, k, v [B, H, D]; returns r [B, H, D] and the new state."""
    state = gammas.to(q.dtype)[:, None, None] * state + k[..., :, None] * v[..., None, :]
    return (q[..., None, :] @ state)[..., 0, :], state


def retention_chunkwise(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, state: torch.Tensor,
                        gammas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One chunk of T tokens from `state`; returns R [B, H, T, D] and the state after the chunk."""
    length = q.shape[-2]
    inner = retention_parallel(q, k, v, gammas)
    b = torch.arange(length, device=q.device, dtype=gammas.dtype)
    xi = (gammas[:, None] ** (b + 1)).to(q.dtype)[..., None]  # [H, T, 1]
    cross = (q @ state) * xi
    key_weights = (gammas[:, None] ** (length - 1 - b)).to(q.dtype)[..., None]  # [H, T, 1]
    new_state = (k * key_weights).transpose(-1, -2) @ v + (gammas ** length).to(q.dtype)[:, None, None] * state
    return inner + cross, new_state


def block_end_states(k: torch.Tensor, v: torch.Tensor, state: torch.Tensor, gammas: torch.Tensor,
                     block_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """States before every block of a chunk (spec §5.4 stream A) and the state after the chunk.

    k, v: [B, H, nb*block_len, D]. Block-local sums S~_j = sum_k gamma^(L-1-k) k^T v are computed in
    parallel over blocks, then S_j = S~_j + gamma^L S_{j-1} is scanned over the (few) blocks.
    Returns (before [B, nb, H, D, D], after [B, H, D, D]).
    """
    batch, heads, tokens, dim = k.shape
    num_blocks = tokens // block_len
    if num_blocks * block_len != tokens:
        raise ValueError(f"chunk of {tokens} tokens is not a whole number of {block_len}-token blocks")
    pos = torch.arange(block_len, device=k.device, dtype=gammas.dtype)
    weights = (gammas[:, None] ** (block_len - 1 - pos)).to(k.dtype)  # [H, L]
    kb = k.reshape(batch, heads, num_blocks, block_len, dim) * weights[None, :, None, :, None]
    vb = v.reshape(batch, heads, num_blocks, block_len, dim)
    local = kb.transpose(-1, -2) @ vb  # [B, H, nb, D, D]
    block_decay = (gammas ** block_len).to(k.dtype)[:, None, None]
    before = []
    for j in range(num_blocks):
        before.append(state)
        state = local[:, :, j] + block_decay * state
    return torch.stack(before, dim=1), state


class MultiScaleRetention(nn.Module):
    """Projections, rotation, key scaling, per-head retention, GroupNorm (no affine), SiLU gate, out-proj."""

    def __init__(self, dim: int, num_heads: int, dropout: float):
        super().__init__()
        if dim % num_heads or (dim // num_heads) % 2:
            raise ValueError(f"retention width {dim} must split into {num_heads} heads of even size")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.g_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.group_norm = nn.GroupNorm(num_heads, dim, affine=False, eps=1e-6)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("gammas", head_decays(num_heads), persistent=False)
        self.register_buffer("thetas", rotation_frequencies(self.head_dim), persistent=False)
        for proj in (self.q_proj, self.k_proj, self.v_proj, self.g_proj, self.out_proj):
            nn.init.xavier_normal_(proj.weight)
            nn.init.zeros_(proj.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def qkv(self, y: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q = rotate(self._heads(self.q_proj(y)), positions, self.thetas)
        k = rotate(self._heads(self.k_proj(y)), positions, self.thetas) / math.sqrt(self.head_dim)
        return q, k, self._heads(self.v_proj(y))

    def finish(self, retained: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """[B, H, T, D] retention output -> dropout -> per-token GroupNorm -> gate -> out-proj."""
        r = self.dropout(retained.transpose(1, 2).flatten(2))  # [B, T, dim]
        r = self.group_norm(r.flatten(0, 1)).view_as(r)
        return self.out_proj(r * F.silu(self.g_proj(y)))

    def forward(self, y: torch.Tensor, state: torch.Tensor, positions: torch.Tensor, mode: str = "chunkwise",
                block_len: int | None = None):
        """y [B, T, dim] (already layer-normed) -> (out, new_state[, states before each block]).

        mode "parallel" ignores `state` (zero) and returns None as state; "recurrent" loops token by
        token; "chunkwise" treats y as one chunk. With block_len (chunkwise only), also returns the
        states before each block of the chunk.
        """
        q, k, v = self.qkv(y, positions)
        gammas = self.gammas
        if mode == "parallel":
            return self.finish(retention_parallel(q, k, v, gammas), y), None
        if mode == "recurrent":
            outs = []
            for t in range(q.shape[-2]):
                r, state = retention_recurrent(q[:, :, t], k[:, :, t], v[:, :, t], state, gammas)
                outs.append(r)
            return self.finish(torch.stack(outs, dim=2), y), state
        if mode != "chunkwise":
            raise ValueError(f"unknown retention mode {mode!r} (parallel | recurrent | chunkwise)")
        retained, new_state = retention_chunkwise(q, k, v, state, gammas)
        out = self.finish(retained, y)
        if block_len is None:
            return out, new_state
        before, _ = block_end_states(k, v, state, gammas, block_len)
        return out, new_state, before
