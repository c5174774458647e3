"""REM tokenizer: shapes, token order, loss composition, perceptual term wiring."""
import dataclasses

import pytest
import torch
from torch import nn

from agents.common.conv import ChannelNorm
from agents.rem.config import TokenizerConfig, atari100k, tiny
from agents.rem.tokenizer import Tokenizer

torch.set_num_threads(1)


def small() -> Tokenizer:
    torch.manual_seed(0)
    return Tokenizer(TokenizerConfig(base_channels=4, embed_dim=32, vocab_size=16, norm_groups=4))


def test_shapes_and_row_major_tokens():
    tokenizer = small().eval()
    frames = torch.rand(3, 3, 64, 64)
    out = tokenizer(frames)
    assert out.tokens.shape == (3, 64) and out.tokens.dtype == torch.int64
    assert out.reconstruction.shape == (3, 3, 64, 64) and out.latents.shape == (3, 32, 8, 8)
    assert torch.equal(tokenizer.tokenize(frames), out.tokens)
    assert tokenizer.tokenize(frames.view(1, 3, 3, 64, 64)).shape == (1, 3, 64)
    # token k = row * 8 + col of the latent grid
    distances = ((out.latents[0, :, 2, 5][None] - tokenizer.codebook) ** 2).sum(-1)
    assert out.tokens[0, 2 * 8 + 5] == distances.argmin()
    grid = tokenizer.code_grid(out.tokens)
    assert grid.shape == (3, 32, 8, 8) and torch.equal(grid[0, :, 2, 5], tokenizer.codebook[out.tokens[0, 21]])
    decoded = tokenizer.decode(out.tokens)
    assert decoded.shape == (3, 3, 64, 64) and decoded.min() >= 0 and decoded.max() <= 1


def test_codebook_init_and_loss_terms():
    tokenizer = small()
    assert tokenizer.codebook.abs().max() <= 1 / 16
    frames = torch.rand(2, 3, 64, 64)
    loss, metrics = tokenizer.loss(frames, None)
    out = tokenizer(frames)
    mse = ((out.reconstruction - (frames * 2 - 1)) ** 2).mean()
    commitment = ((out.latents - tokenizer.codebook[out.tokens].view(2, 8, 8, 32).permute(0, 3, 1, 2)) ** 2).mean()
    assert loss.item() == pytest.approx((mse + 2 * commitment).item(), rel=1e-5)  # codebook + beta=1 commitment
    assert "tokenizer/perceptual" not in metrics


class ConstantPerceptual(nn.Module):
    def forward(self, x, y):
        assert x.min() >= -1 and x.max() <= 1  # targets are given in [-1, 1]
        return torch.full((x.shape[0], 1, 1, 1), 0.25)


def test_perceptual_term_is_weighted_and_can_be_off():
    tokenizer = small()
    frames = torch.rand(2, 3, 64, 64)
    base, _ = tokenizer.loss(frames, None)
    with_lpips, metrics = tokenizer.loss(frames, ConstantPerceptual())
    assert (with_lpips - base).item() == pytest.approx(0.25, abs=1e-6)
    assert metrics["tokenizer/perceptual"] == pytest.approx(0.25)
    tokenizer.cfg = TokenizerConfig(base_channels=4, embed_dim=32, vocab_size=16, norm_groups=4, perceptual_weight=0.0)
    off, _ = tokenizer.loss(frames, ConstantPerceptual())
    assert off.item() == pytest.approx(base.item())


def test_inconsistent_widths_are_rejected():
    with pytest.raises(ValueError, match="embed_dim"):
        Tokenizer(TokenizerConfig(base_channels=8, embed_dim=32))


def paddle_pair() -> torch.Tensor:
    """Two Catch-like frames: the same ball, paddles one cell apart on the bottom row."""
    frames = torch.zeros(2, 3, 64, 64)
    frames[:, :, 8:16, 24:32] = 1
    frames[0, :, 56:64, 0:8] = frames[1, :, 56:64, 8:16] = 1
    return frames


def test_without_group_norm_top_row_latents_do_not_see_the_paddle_row():
    """norm "none" keeps codes local (no frame-wide statistics); the official GroupNorm does not."""
    def top_row_latents(norm: str) -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(0)
        tokenizer = Tokenizer(TokenizerConfig(base_channels=4, embed_dim=32, vocab_size=16, norm_groups=4, norm=norm))
        with torch.no_grad():
            latents = tokenizer(paddle_pair()).latents
        return latents[0, :, 0], latents[1, :, 0]

    torch.testing.assert_close(*top_row_latents("none"), rtol=0, atol=0)
    assert not torch.allclose(*top_row_latents("group"))
    assert not any(isinstance(m, nn.GroupNorm) for m in Tokenizer(TokenizerConfig(norm="none")).modules())


def test_channel_norm_with_1x1_inner_convs_keeps_latents_within_a_cell_and_a_half():
    """`tiny`'s V: no frame-wide statistic and a 17-pixel receptive field, so latent rows 0-5 never see the
    bottom (paddle) row; with the official 3x3 inner convs (61 pixels) rows 3-5 do."""
    def latents(inner_kernel: int) -> torch.Tensor:
        torch.manual_seed(0)
        cfg = TokenizerConfig(base_channels=4, embed_dim=32, vocab_size=16, norm="channel", inner_kernel=inner_kernel)
        with torch.no_grad():
            return Tokenizer(cfg)(paddle_pair()).latents

    local = latents(1)
    torch.testing.assert_close(local[0, :, :6], local[1, :, :6], rtol=0, atol=0)
    assert not torch.equal(local[0, :, 6:], local[1, :, 6:])
    official = latents(3)
    assert not torch.equal(official[0, :, 3:6], official[1, :, 3:6])


def test_reconstruction_weight_scales_only_the_mse_term():
    torch.manual_seed(1)
    frames = torch.rand(2, 3, 64, 64)
    tokenizer = small()
    tokenizer.cfg = TokenizerConfig(base_channels=4, embed_dim=32, vocab_size=16, norm_groups=4, perceptual_weight=0.0)
    base, metrics = tokenizer.loss(frames, None)
    tokenizer.cfg = dataclasses.replace(tokenizer.cfg, reconstruction_weight=16.0)
    weighted, _ = tokenizer.loss(frames, None)
    assert (weighted - base).item() == pytest.approx(15 * metrics["tokenizer/reconstruction"].item(), rel=1e-5)


def test_tiny_tokenizer_is_the_local_one_and_the_paper_one_is_official():
    def kinds(cfg: TokenizerConfig) -> tuple[set[type], set[tuple[int, int]]]:
        tokenizer = Tokenizer(cfg)
        norms = {type(m) for m in tokenizer.modules() if isinstance(m, (nn.GroupNorm, ChannelNorm))}
        return norms, {m.kernel_size for m in tokenizer.encoder.modules() if isinstance(m, nn.Conv2d)}

    assert kinds(tiny().tokenizer) == ({ChannelNorm}, {(3, 3), (1, 1)})
    assert kinds(atari100k().tokenizer) == ({nn.GroupNorm}, {(3, 3)})
    assert tiny().tokenizer.reconstruction_weight == 16.0 and atari100k().tokenizer.reconstruction_weight == 1.0
