"""IRIS: parameter counts of the paper profiles, losses at init, KV-cache equivalence."""
import dataclasses
import math

import pytest
import torch

from agents.common.actor_critic import IrisConvTrunk, RecurrentActorCritic
from agents.iris.config import TokenizerConfig, WorldModelConfig, atari100k, crafter, tiny
from agents.iris.imagination import WorldModelEnv
from agents.iris.tokenizer import AttnBlock, Tokenizer
from agents.iris.world_model import WorldModel

torch.set_num_threads(1)


def count(module_or_params):
    params = module_or_params.parameters() if hasattr(module_or_params, "parameters") else module_or_params
    return sum(p.numel() for p in params)


def test_tokenizer_parameter_counts_match_spec():
    tok = Tokenizer(atari100k().tokenizer)
    assert count(tok) == 4_027_523
    assert count(tok.encoder) == 1_418_240
    assert count(tok.decoder) == 1_821_827
    assert count(tok.quantizer) == 262_144
    assert count(tok.pre_quant_conv) + count(tok.post_quant_conv) == 525_312
    frames = torch.rand(2, 3, 64, 64)
    q = tok.encode(frames)
    assert q.tokens.shape == (2, 16) and q.quantized.shape == (2, 512, 4, 4)
    out = tok.decode_tokens(q.tokens)
    assert out.shape == (2, 3, 64, 64) and out.min() >= 0 and out.max() <= 1


def test_tokenizer_squared_error_term_is_off_in_paper_profiles_and_weighted_in_tiny():
    assert atari100k().tokenizer.squared_error_weight == crafter().tokenizer.squared_error_weight == 0.0
    torch.manual_seed(0)
    frames = torch.rand(2, 3, 64, 64)
    paper_like = Tokenizer(dataclasses.replace(tiny().tokenizer, squared_error_weight=0.0))
    assert float(paper_like.loss(frames).squared) == 0.0
    tok = Tokenizer(tiny().tokenizer)
    assert tok.grid == 4  # tiny: the paper's 4x4 grid
    losses = tok.loss(frames)
    recon = tok.decode_grid(tok.encode(frames).quantized)
    mse = (frames * 2 - 1 - recon).pow(2).mean()
    torch.testing.assert_close(losses.squared, tiny().tokenizer.squared_error_weight * mse)
    total = losses.codebook + losses.commitment + losses.reconstruction + losses.perceptual + losses.squared
    torch.testing.assert_close(losses.total, total)


def test_paper_tokenizers_have_group_norm_and_middle_attention_and_tiny_has_neither():
    def attention_blocks(tok):
        return [sum(isinstance(m, AttnBlock) for m in part.mid.modules()) for part in (tok.encoder, tok.decoder)]

    def group_norms(tok):
        return sum(isinstance(m, torch.nn.GroupNorm) for m in tok.modules())

    paper = Tokenizer(atari100k().tokenizer)
    assert attention_blocks(paper) == [1, 1] and group_norms(paper) > 0
    assert crafter().tokenizer.mid_attention and crafter().tokenizer.norm == "group"
    tok = Tokenizer(tiny().tokenizer)
    assert len(tok.encoder.mid) == len(tok.decoder.mid) == 0
    assert group_norms(tok) == 0 and not any(isinstance(m, AttnBlock) for m in tok.modules())


def test_tiny_top_row_codes_do_not_see_the_paddle_row_and_with_group_norm_they_do():
    """Why tiny has no GroupNorm: its frame-wide statistics carry the paddle into every token's code."""
    def top_row_latents(cfg):
        torch.manual_seed(0)
        encoder = Tokenizer(cfg).encoder
        frames = torch.zeros(2, 3, 64, 64)
        frames[:, :, 8:16, 24:32] = 1  # the same ball
        frames[0, :, 56:64, 0:8] = frames[1, :, 56:64, 8:16] = 1  # the paddle one cell apart
        with torch.no_grad():
            z = encoder(frames * 2 - 1)
        return z[0, :, 0], z[1, :, 0]

    torch.testing.assert_close(*top_row_latents(tiny().tokenizer), rtol=0, atol=0)
    with_group_norm = dataclasses.replace(tiny().tokenizer, norm="group", norm_groups=4)
    assert not torch.allclose(*top_row_latents(with_group_norm))


@pytest.mark.parametrize("changes,match", [({"norm": "batch"},
                                             "TokenizerConfig.norm: expected one of group, channel, none"),
                                           ({"middle_blocks": False, "mid_attention": True},
                                            "mid_attention: needs middle_blocks")])
def test_tokenizer_config_rejects_unknown_norm_and_attention_without_middle_blocks(changes, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(atari100k().tokenizer, **changes)


@pytest.mark.parametrize("actions,expected", [(4, 8_447_493), (18, 8_451_077)])
def test_world_model_parameter_counts_match_spec(actions, expected):
    wm = WorldModel(atari100k().world_model, 512, 16, actions)
    assert count(wm) == expected
    assert wm.max_tokens == 340 == 16 + 19 * 17 + 1  # H = 20 imagination fills the cache exactly


def test_crafter_world_model_is_the_widened_33m_model():
    cfg = crafter().world_model
    assert (cfg.embed_dim, cfg.num_heads, cfg.num_layers) == (512, 8, 10)
    # Spec §9: ≈ 33.0M; exact figure of this layout with 17 Crafter actions.
    assert count(WorldModel(cfg, 512, 16, 17)) == 33_022_981


@pytest.mark.parametrize("actions,expected", [(4, 3_217_957), (18, 3_225_139)])
def test_actor_critic_parameter_counts_match_spec(actions, expected):
    trunk = IrisConvTrunk(3, atari100k().actor_critic.channels)
    assert count(RecurrentActorCritic(trunk, trunk.output_dim, actions, 512)) == expected


def test_world_model_losses_at_init_are_uniform_cross_entropies():
    """Heads are Linear→ReLU→Linear with N(0, 0.02) weights on LayerNorm-ed features (unit variance):
    the hidden pre-activations have std 0.02·√256 = 0.32, the logits std σ ≈ 0.02·√(256·0.32²/2) ≈ 0.07,
    so E[CE] ≈ ln n + σ²/2 ≈ ln n + 0.003: we allow 0.02 around ln 512, ln 3 and ln 2."""
    torch.manual_seed(0)
    wm = WorldModel(atari100k().world_model, 512, 16, 4).eval()
    b, t = 2, 20
    tokens = torch.randint(0, 512, (b, t, 16))
    actions = torch.randint(0, 4, (b, t))
    rewards = torch.randint(-1, 2, (b, t)).float()
    ends = torch.zeros(b, t, dtype=torch.long)
    valid = torch.ones(b, t, dtype=torch.bool)
    with torch.no_grad():
        losses = wm.loss(tokens, actions, rewards, ends, valid)
    assert losses.next_token.item() == pytest.approx(math.log(512), abs=0.02)
    assert losses.reward.item() == pytest.approx(math.log(3), abs=0.02)
    assert losses.end.item() == pytest.approx(math.log(2), abs=0.02)


def test_world_model_loss_ignores_padded_targets():
    torch.manual_seed(0)
    cfg = tiny()
    wm = WorldModel(cfg.world_model, cfg.tokenizer.vocab_size, 16, 3).eval()
    tokens = torch.randint(0, 32, (2, 8, 16))
    actions = torch.randint(0, 3, (2, 8))
    rewards, ends = torch.zeros(2, 8), torch.zeros(2, 8)
    valid = torch.ones(2, 8, dtype=torch.bool)
    valid[:, 5:] = False
    base = wm.loss(tokens, actions, rewards, ends, valid)
    tokens2, rewards2 = tokens.clone(), rewards.clone()
    tokens2[:, 5:] = torch.randint(0, 32, (2, 3, 16))
    rewards2[:, 5:] = 1.0
    ends2 = ends.clone()
    ends2[:, 5:] = 1.0
    other = wm.loss(tokens2, actions, rewards2, ends2, valid)
    # Padded frames are inputs after every valid target, so causality leaves all valid losses unchanged.
    torch.testing.assert_close(base.next_token, other.next_token)
    torch.testing.assert_close(base.reward, other.reward)
    torch.testing.assert_close(base.end, other.end)


def test_cached_and_uncached_world_model_logits_are_equal():
    torch.manual_seed(0)
    cfg = tiny()
    wm = WorldModel(cfg.world_model, cfg.tokenizer.vocab_size, cfg.tokenizer.tokens_per_frame, 3).eval()
    tok = Tokenizer(cfg.tokenizer).eval()
    gen = torch.Generator().manual_seed(3)
    env = WorldModelEnv(tok, wm, gen)
    frames = torch.rand(3, 3, 64, 64)
    env.reset(frames)
    sequence = [env.frame_tokens]
    horizon = cfg.world_model.max_blocks
    for k in range(horizon):
        actions = torch.randint(0, 3, (3,), generator=gen)
        _, _, nxt = env.step(actions, predict_next=k < horizon - 1)
        sequence.append(actions.unsqueeze(1))
        if nxt is not None:
            sequence.append(env.frame_tokens)
            assert nxt.shape == (3, 3, 64, 64)
    # The horizon fills the cache exactly (K + (H-1)(K+1) + 1 = capacity; paper: 340) without a refresh.
    assert env.cache.size == env.cache.capacity and env.cache_refreshes == 0
    seq = torch.cat(sequence, dim=1)
    with torch.no_grad():
        full = wm(seq)
        cache = wm.empty_cache(3)
        step_by_step = [wm(seq[:, i:i + 1], cache) for i in range(seq.size(1))]
    for name in ("next_token_logits", "reward_logits", "end_logits"):
        cached = torch.cat([getattr(o, name) for o in step_by_step], dim=1)
        torch.testing.assert_close(cached, getattr(full, name), atol=1e-5, rtol=1e-5)


def test_imagination_refreshes_cache_beyond_context():
    torch.manual_seed(0)
    cfg = tiny()
    wm = WorldModel(cfg.world_model, cfg.tokenizer.vocab_size, cfg.tokenizer.tokens_per_frame, 3).eval()
    env = WorldModelEnv(Tokenizer(cfg.tokenizer).eval(), wm)
    env.reset(torch.rand(2, 3, 64, 64))
    for _ in range(cfg.world_model.max_blocks + 1):
        rewards, ends, frames = env.step(torch.zeros(2, dtype=torch.long))
        assert set(rewards.tolist()) <= {-1.0, 0.0, 1.0} and set(ends.tolist()) <= {0, 1}
    assert env.cache_refreshes == 1
