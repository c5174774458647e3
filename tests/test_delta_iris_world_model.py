"""World model with I-tokens (spec §5): sequence layout, causality, KV cache, imagination, initial losses."""
import math

import pytest
import torch
import torch.nn.functional as F

import agents.delta_iris.imagination as imagination_module
from agents.delta_iris.config import atari100k, crafter, tiny
from agents.delta_iris.imagination import Imagination
from agents.delta_iris.tokenizer import Tokenizer
from agents.delta_iris.world_model import WorldModel

torch.set_num_threads(1)


def tiny_models(seed=0, actions=3, two_hot_rewards=None):
    torch.manual_seed(seed)
    config = tiny()
    if two_hot_rewards is not None:
        config.world_model.two_hot_rewards = two_hot_rewards
    tokenizer = Tokenizer(config.tokenizer, actions).eval()
    world_model = WorldModel(config.world_model, actions, config.tokenizer.codebook_size,
                             config.tokenizer.num_tokens).eval()
    return config, tokenizer, world_model


def test_blocks_are_itoken_action_then_delta_tokens():
    config, _, wm = tiny_models()
    frames, actions = torch.rand(2, 3, 3, 64, 64), torch.randint(0, 3, (2, 3))
    tokens = torch.randint(0, config.tokenizer.codebook_size, (2, 3, 4))
    with torch.no_grad():
        sequence = wm.embed_blocks(frames, actions, tokens)
        itokens = wm.itokens(frames)
    assert sequence.shape == (2, 3 * 6, config.world_model.embed_dim)
    for t in range(3):
        torch.testing.assert_close(sequence[:, 6 * t], itokens[:, t])
        torch.testing.assert_close(sequence[:, 6 * t + 1], wm.action_emb(actions[:, t]))
        for k in range(4):
            torch.testing.assert_close(sequence[:, 6 * t + 2 + k], wm.latent_emb(tokens[:, t, k]))
    # The I-token is the (h, w, c)-flattened CNN map, layer-normalised.
    raw = wm.frame_cnn(frames[:, 0]).permute(0, 2, 3, 1).flatten(1)
    torch.testing.assert_close(itokens[:, 0], F.layer_norm(raw, raw.shape[-1:], wm.frame_ln.weight, wm.frame_ln.bias))


def test_attention_is_causal_and_the_cache_matches_a_full_pass():
    config, _, wm = tiny_models()
    e = config.world_model.embed_dim
    x = torch.randn(2, 20, e)
    with torch.no_grad():
        full = wm(x)
        changed = x.clone()
        changed[:, 11] += torch.randn(e)
        assert torch.allclose(wm(changed)[:, :11], full[:, :11], atol=1e-6)
        assert not torch.allclose(wm(changed)[:, 11], full[:, 11])
        cache = wm.transformer.new_cache(2)
        pieces = [wm(x[:, a:b], cache) for a, b in ((0, 7), (7, 8), (8, 14), (14, 20))]
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-5, rtol=1e-5)
    assert cache.size == 20
    with pytest.raises(ValueError, match="max_tokens"):
        wm(torch.randn(1, 6 * config.world_model.max_blocks + 1, e))


@pytest.mark.parametrize("two_hot_rewards", [True, False], ids=["two-hot reward", "sign-class reward"])
def test_imagination_reproduces_the_training_sequence(monkeypatch, two_hot_rewards):
    """Autoregressive Δ-token prediction through the cache gives the logits of the teacher-forced
    training pass over [Ĩ_0, a_0, z_1, ..., Ĩ_n, a_n, ẑ_{n+1}, Ĩ(x̂_{n+1}), a_{n+1}, ...]."""
    config, tokenizer, wm = tiny_models(seed=3, two_hot_rewards=two_hot_rewards)
    sampled_reward = 0 if two_hot_rewards else 1  # a two-hot reward is an expectation; a sign class is sampled
    per_step = sampled_reward + 1 + 4  # recorded per step: [reward], end, 4 Δ-tokens
    recorded = []

    def argmax_sampler(logits, generator):
        recorded.append(logits.clone())
        return logits.argmax(-1)

    monkeypatch.setattr(imagination_module, "sample_categorical", argmax_sampler)
    frames, actions = torch.rand(2, 3, 3, 64, 64), torch.randint(0, 3, (2, 2))
    imagined_actions = torch.randint(0, 3, (2, 3))
    imagination = Imagination(tokenizer, wm)
    with torch.no_grad():
        start = imagination.reset(frames, actions)
        assert torch.equal(start, frames[:, -1]) and imagination.cache.size == 2 * 6 + 1
        outputs = [imagination.step(imagined_actions[:, t]) for t in range(3)]
        assert imagination.cache.size == 13 + 4 + 2 * 6  # z^4 of the last step is deferred
        # Teacher-forced pass over the same blocks.
        real_tokens = tokenizer.encode(frames[:, :-1], actions, frames[:, 1:]).tokens
        first_token = sampled_reward + 1
        sampled = torch.stack([torch.stack([recorded[per_step * t + first_token + k].argmax(-1) for k in range(4)], -1)
                               for t in range(3)], 1)
        all_frames = torch.cat((frames, torch.stack([o[0] for o in outputs], 1)), 1)
        all_actions = torch.cat((actions, imagined_actions, torch.zeros(2, 1, dtype=torch.long)), 1)
        all_tokens = torch.cat((real_tokens, sampled, torch.zeros(2, 1, 4, dtype=torch.long)), 1)
        heads = wm.block_heads(wm(wm.embed_blocks(all_frames, all_actions, all_tokens)))
    for t in range(3):
        block, first = 2 + t, per_step * t
        torch.testing.assert_close(recorded[first + sampled_reward], heads.ends[:, block], atol=1e-4, rtol=1e-4)
        for k in range(4):
            torch.testing.assert_close(recorded[first + first_token + k], heads.latents[:, block, k], atol=1e-4,
                                       rtol=1e-4)
        if two_hot_rewards:
            reward = wm.reward_codec.predict(heads.rewards[:, block])
        else:
            torch.testing.assert_close(recorded[first], heads.rewards[:, block], atol=1e-4, rtol=1e-4)
            reward = heads.rewards[:, block].argmax(-1).float() - 1
        torch.testing.assert_close(outputs[t][1], reward, atol=1e-4, rtol=1e-4)
        # The next frame is decoded from the previous frame, the action and the sampled Δ-tokens.
        expected = tokenizer.decode_tokens(all_frames[:, block].unsqueeze(1), imagined_actions[:, t:t + 1],
                                           sampled[:, t:t + 1])[:, 0]
        torch.testing.assert_close(outputs[t][0], expected)


def test_delta_token_loss_uses_the_earlier_frames_step_mask():
    config, tokenizer, wm = tiny_models(seed=1)
    frames, actions = torch.rand(2, 4, 3, 64, 64), torch.randint(0, 3, (2, 4))
    tokens = torch.randint(0, config.tokenizer.codebook_size, (2, 3, 4))
    rewards, ends = torch.tensor([[0.0, 1.0, -0.1, 0.0]] * 2), torch.zeros(2, 4, dtype=torch.long)
    step_mask = torch.tensor([[True, True, True, False], [False, True, False, False]])
    with torch.no_grad():
        _, metrics = wm.compute_loss(frames, actions, rewards, ends, tokens, step_mask)
        heads = wm.block_heads(wm(wm.embed_blocks(frames, actions, torch.cat((tokens, torch.zeros_like(tokens[:, :1])), 1))))
    pairs = step_mask[:, :-1]
    expected = F.cross_entropy(heads.latents[:, :-1][pairs].flatten(0, 1), tokens[pairs].flatten())
    torch.testing.assert_close(metrics["latents_loss"], expected)
    expected_ends = F.cross_entropy(heads.ends[step_mask], ends[step_mask])
    torch.testing.assert_close(metrics["ends_loss"], expected_ends)


@pytest.mark.parametrize("profile, actions, expected", [
    (crafter, 17, {"latents_loss": math.log(1024), "rewards_loss": math.log(255), "ends_loss": math.log(2)}),
    (atari100k, 4, {"latents_loss": 0.1 * math.log(1024), "rewards_loss": math.log(3), "ends_loss": 0.1 * math.log(2)}),
])
def test_initial_losses_are_near_uniform(profile, actions, expected):
    torch.manual_seed(0)
    config = profile()
    wm = WorldModel(config.world_model, actions, 1024, 4)
    t = config.world_model.max_blocks
    frames = torch.rand(1, t, 3, 64, 64)
    rewards = torch.randint(-1, 2, (1, t)).float()
    ends = torch.arange(t).remainder(2).unsqueeze(0)  # balanced classes: CE = ln 2 + O(logit gap²)
    tokens = torch.randint(0, 1024, (1, t - 1, 4))
    step_mask = torch.ones(1, t, dtype=torch.bool)
    step_mask[0, -1] = False
    with torch.no_grad():
        _, metrics = wm.compute_loss(frames, torch.randint(0, actions, (1, t)), rewards, ends, tokens, step_mask)
    for name, value in expected.items():
        assert float(metrics[name]) == pytest.approx(value, abs=0.03 * max(1.0, value)), name
