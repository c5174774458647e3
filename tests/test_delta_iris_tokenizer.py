"""Context-aware tokenizer and its normalised EMA quantiser (spec §4)."""
import math

import pytest
import torch
import torch.nn.functional as F

from agents.delta_iris.config import crafter, tiny
from agents.delta_iris.quantizer import Quantizer
from agents.delta_iris.tokenizer import Tokenizer

torch.set_num_threads(1)


def test_patch_layout_is_row_major_grid_of_k_l_c_vectors():
    tokenizer = Tokenizer(crafter().tokenizer, 17)
    z = torch.arange(64 * 8 * 8, dtype=torch.float32).reshape(1, 64, 8, 8)
    patches = tokenizer.to_patches(z)
    assert patches.shape == (1, 4, 1024)
    # token 1 = top-right 4x4 patch; its vector runs over (k, l, c) with c fastest
    assert patches[0, 1, 0] == z[0, 0, 0, 4] and patches[0, 1, 1] == z[0, 1, 0, 4]
    assert patches[0, 1, 64] == z[0, 0, 0, 5] and patches[0, 2, 0] == z[0, 0, 4, 0]
    assert torch.equal(tokenizer.from_patches(patches), z)


def test_crafter_encoder_and_decoder_shapes():
    torch.manual_seed(0)
    tokenizer = Tokenizer(crafter().tokenizer, 17).eval()
    x1, x2 = torch.rand(1, 2, 3, 64, 64), torch.rand(1, 2, 3, 64, 64)
    a = torch.tensor([[3, 16]])
    with torch.no_grad():
        out = tokenizer.encode(x1, a, x2)
        assert out.tokens.shape == (1, 2, 4) and out.q.shape == (1, 2, 4, 1024)
        assert tokenizer.encoder(torch.cat((x1[0], x1[0, :, :1], x2[0]), 1)).shape == (2, 64, 8, 8)
        assert tokenizer.decode(x1, a, out.q).shape == (1, 2, 3, 64, 64)


def test_decoder_reconstructs_from_previous_frame_action_and_tokens():
    """In eval mode the straight-through code equals the code looked up from the Δ-token indices, so
    decoding (x_{t-1}, a_{t-1}, z_t) reproduces the autoencoder's reconstruction; and the decoder
    really conditions on the previous frame and the action."""
    torch.manual_seed(0)
    tokenizer = Tokenizer(tiny().tokenizer, 3).eval()
    x1, x2, a = torch.rand(2, 3, 3, 64, 64), torch.rand(2, 3, 3, 64, 64), torch.randint(0, 3, (2, 3))
    with torch.no_grad():
        out = tokenizer.encode(x1, a, x2)
        through_encoder = tokenizer.decode(x1, a, out.q)
        torch.testing.assert_close(tokenizer.decode(x1, a, tokenizer.quantizer.embed_tokens(out.tokens)),
                                   through_encoder, atol=1e-5, rtol=0)
        from_tokens = tokenizer.decode_tokens(x1, a, out.tokens)
        rounded = through_encoder.clamp(0, 1).mul(255).round().div(255)
        assert (from_tokens - rounded).abs().max() <= 1 / 255 + 1e-6  # float ties may round apart
        assert torch.all((from_tokens * 255 - (from_tokens * 255).round()).abs() < 1e-4)  # 8-bit grid
        assert not torch.allclose(tokenizer.decode_tokens(torch.rand_like(x1), a, out.tokens), from_tokens)
        assert not torch.allclose(tokenizer.decode_tokens(x1, (a + 1) % 3, out.tokens), from_tokens)


def test_reconstruction_and_commitment_losses_match_their_definitions():
    torch.manual_seed(1)
    tokenizer = Tokenizer(tiny().tokenizer, 3).eval()
    obs, actions = torch.rand(2, 4, 3, 64, 64), torch.randint(0, 3, (2, 4))
    mask = torch.tensor([[True, True, True, True], [False, True, True, False]])
    with torch.no_grad():
        total, metrics = tokenizer.compute_loss(obs, actions, mask)
        out = tokenizer.encode(obs[:, :-1], actions[:, :-1], obs[:, 1:])
        delta = (obs[:, 1:] - tokenizer.decode(obs[:, :-1], actions[:, :-1], out.q))[mask[:, :-1] & mask[:, 1:]]
        assert len(delta) == 4  # 3 real pairs in row 0, 1 in row 1
        u = F.normalize(tokenizer.quantizer.pre_proj(tokenizer.to_patches(
            tokenizer.encoder(torch.cat((obs[:, :-1].flatten(0, 1),
                                         tokenizer.encoder_action(actions[:, :-1]).reshape(-1, 1, 64, 64),
                                         obs[:, 1:].flatten(0, 1)), 1)))), dim=-1)
        code = tokenizer.quantizer.codebook[out.tokens.flatten(0, 1)]
    torch.testing.assert_close(metrics["commitment_loss"], 0.02 * (u - code).pow(2).mean())
    torch.testing.assert_close(metrics["l1_loss"], 0.1 * delta.abs().mean())
    torch.testing.assert_close(metrics["l2_loss"], delta.pow(2).mean())
    torch.testing.assert_close(metrics["max_pixel_loss"], 0.01 * delta.flatten(1).pow(2).amax(1).mean())
    torch.testing.assert_close(total, sum(metrics[k] for k in ("commitment_loss", "l1_loss", "l2_loss", "max_pixel_loss")))


def test_ema_codebook_update_is_normalised_and_keeps_unused_directions():
    torch.manual_seed(0)
    quantizer = Quantizer(16, 4, input_dim=8, max_updates_with_revival=0)
    quantizer.codebook.copy_(F.normalize(torch.randn(16, 4), dim=-1))
    before = quantizer.codebook.clone()
    z = torch.randn(10, 1, 8)
    with torch.no_grad():
        u = F.normalize(quantizer.pre_proj(z), dim=-1).reshape(-1, 4)
    tokens = (u @ before.t()).argmax(-1)
    out = quantizer.train()(z)
    assert torch.equal(out.tokens.flatten(), tokens)
    expected = before.clone()
    for code in range(16):
        chosen = u[tokens == code]
        mean = F.normalize(chosen.mean(0), dim=0) if len(chosen) else torch.zeros(4)
        expected[code] = F.normalize(0.99 * before[code] + 0.01 * mean, dim=0)
    torch.testing.assert_close(quantizer.codebook, expected)
    torch.testing.assert_close(quantizer.codebook.norm(dim=-1), torch.ones(16))
    counts = torch.bincount(tokens, minlength=16).float()
    torch.testing.assert_close(quantizer.usage, 0.98 / 16 + 0.02 * counts / 10)
    assert int(quantizer.num_updates) == 1


def test_revival_is_gated_by_entropy_and_update_count():
    torch.manual_seed(0)
    z = torch.randn(64, 1, 8)
    collapsed = torch.zeros(1024)
    collapsed[0] = 1.0  # usage entropy 0 bits: revival allowed even with R = 0 (Crafter)
    crafter_like = Quantizer(1024, 4, 8, max_updates_with_revival=0).train()
    crafter_like.usage.copy_(collapsed)
    assert crafter_like(z).metrics["codewords_revived"] == 64
    healthy = Quantizer(1024, 4, 8, max_updates_with_revival=0).train()  # uniform usage: 10 bits
    assert healthy(z).metrics["codewords_revived"] == 0
    # Atari (R = 400): below 8 bits but above 1 bit, revival only during the first R updates.
    low = torch.full((1024,), 1e-9)
    low[:16] = 1 / 16  # 4 bits
    atari_like = Quantizer(1024, 4, 8, max_updates_with_revival=400).train()
    atari_like.usage.copy_(low)
    assert atari_like(z).metrics["codewords_revived"] > 0
    late = Quantizer(1024, 4, 8, max_updates_with_revival=400).train()
    late.usage.copy_(low)
    late.num_updates.fill_(400)
    assert late(z).metrics["codewords_revived"] == 0
    # dead_code_revival=False (tiny): no revival, even collapsed to 0 bits within the first R updates.
    off = Quantizer(1024, 4, 8, max_updates_with_revival=400, revival=False).train()
    off.usage.copy_(collapsed)
    assert off(z).metrics["codewords_revived"] == 0
    assert Quantizer(1024, 4, 8, 0).usage_entropy() == pytest.approx(math.log2(1024), abs=1e-4)  # initial f = 1/N


def test_eval_mode_never_touches_the_codebook():
    quantizer = Quantizer(16, 4, 8, 0).eval()
    before = quantizer.codebook.clone()
    out = quantizer(torch.randn(5, 2, 8))
    assert torch.equal(before, quantizer.codebook) and out.metrics == {} and int(quantizer.num_updates) == 0
