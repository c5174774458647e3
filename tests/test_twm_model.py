"""TWM networks: parameter counts, initial losses, shapes, memory equivalence and episode masks."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from agents.twm.actor_critic import ActorCritic, gae
from agents.twm.config import atari100k, tiny
from agents.twm.dynamics import DynamicsModel, attention_mask
from agents.twm.imagination import imagine
from agents.twm.observation_model import ObservationModel, mode_onehot, sample_onehot, straight_through

torch.set_num_threads(1)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_paper_parameter_counts_match_spec():
    config = atari100k()
    obs = ObservationModel(config, in_channels=4)
    assert count(obs.encoder_cnn) + count(obs.encoder_mlp) == 3_126_992
    assert count(obs.decoder_mlp) + count(obs.decoder_cnn) == 5_107_540
    assert count(obs) == 8_234_532
    dyn = DynamicsModel(config, num_actions=18)
    assert count(dyn.transformer) == 8_543_232
    assert count(dyn.transformer.layers[0]) == 854_272
    assert count(dyn.z_head) == 1_444_864
    assert count(dyn.r_head) == count(dyn.g_head) == 263_425
    assert count(dyn) == 10_782_466
    assert count(DynamicsModel(config, num_actions=4)) == 10_777_858 + 256 * 4
    ac = ActorCritic(config, num_actions=18)
    assert count(ac.actor) == 1_322_002
    assert count(ac.critic) == 1_313_281
    assert count(obs) + count(dyn) + count(ac.actor) + count(ac.critic) == 21_652_281


def test_layers_start_identical_and_init_rules():
    config = tiny()
    dyn = DynamicsModel(config, num_actions=3)
    first, second = dyn.transformer.layers[0].state_dict(), dyn.transformer.layers[1].state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert torch.allclose(dyn.g_head.layers[-1].bias, torch.tensor([config.gamma]))
    assert torch.all(dyn.r_head.layers[-1].bias == 0)
    # kaiming-uniform bound √3·gain/√fan_in: gain √2 hidden, 1 on the final layer
    hidden, final = dyn.z_head.layers[0].weight, dyn.z_head.layers[-1].weight
    assert hidden.abs().max() <= math.sqrt(6 / hidden.shape[1]) + 1e-6
    assert hidden.abs().max() > 0.9 * math.sqrt(6 / hidden.shape[1])
    assert final.abs().max() <= math.sqrt(3 / final.shape[1]) + 1e-6
    ac = ActorCritic(config, num_actions=3)
    weight = ac.actor[0].weight  # orthogonal rows scaled by √2
    assert torch.allclose(weight @ weight.T, 2 * torch.eye(weight.shape[0]), atol=1e-4)


def test_observation_model_shapes_and_losses():
    config = tiny()
    om = ObservationModel(config, in_channels=4)
    frames = torch.rand(2, 3, 4, 64, 64)
    log_probs = om.encode(frames)
    assert log_probs.shape == (2, 3, config.z_categoricals, config.z_categories)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(2, 3, config.z_categoricals))
    z = straight_through(log_probs, torch.Generator().manual_seed(0))
    assert torch.allclose(z.detach().sum(-1), torch.ones(2, 3, config.z_categoricals))
    assert torch.allclose(z.detach().max(-1).values, torch.ones(2, 3, config.z_categoricals))
    assert om.decode(z.flatten(-2)).shape == frames.shape
    # Gaussian NLL: exact constant at a perfect reconstruction, + ½‖o-ô‖² otherwise
    pixels = 4 * 64 * 64
    assert om.decoder_loss(frames, frames).item() == pytest.approx(0.5 * pixels * math.log(2 * math.pi), rel=1e-6)
    assert (om.decoder_loss(frames + 1.0, frames) - om.decoder_loss(frames, frames)).item() == pytest.approx(
        0.5 * pixels, rel=1e-5)
    uniform = torch.full((5, config.z_categoricals, config.z_categories), -math.log(config.z_categories))
    loss, entropy = om.entropy_loss(uniform)
    assert loss.item() == 0 and entropy.item() == pytest.approx(1.0)
    peaked = torch.log_softmax(torch.nn.functional.one_hot(torch.zeros(5, config.z_categoricals).long(),
                                                           config.z_categories).float() * 100, -1)
    loss, entropy = om.entropy_loss(peaked)
    assert loss.item() == pytest.approx(config.obs_entropy_coef * config.obs_entropy_threshold, rel=1e-4)
    # consistency CE against a uniform encoder is K·ln C whatever the dynamics prediction
    predicted = torch.softmax(torch.randn(5, config.z_categoricals, config.z_categories), -1)
    assert om.consistency_loss(uniform, predicted).item() == pytest.approx(
        config.obs_consistency_coef * config.z_categoricals * math.log(config.z_categories), rel=1e-5)
    assert torch.equal(mode_onehot(log_probs).argmax(-1), log_probs.argmax(-1))


def test_dynamics_losses_at_initialisation_match_analytic_values():
    config = replace(tiny(), dyn_dropout=0.0)
    dyn = DynamicsModel(config, num_actions=3)
    with torch.no_grad():  # near-uniform outputs: zero final weights (biases keep the spec's init)
        for head in (dyn.z_head, dyn.r_head, dyn.g_head):
            head.layers[-1].weight.zero_()
    batch, steps = 4, config.wm_sequence_length + 1
    z = torch.nn.functional.one_hot(torch.randint(0, config.z_categories, (batch, steps, config.z_categoricals)),
                                    config.z_categories).float().flatten(-2)
    h = dyn.forward_sequence(z, torch.randint(0, 3, (batch, steps)), torch.zeros(batch, steps - 1),
                             torch.zeros(batch, steps - 1, dtype=torch.bool))
    assert h.shape == (batch, steps, config.dyn_embed_dim)
    targets = torch.log_softmax(torch.randn(batch, steps - 1, config.z_categoricals, config.z_categories), -1)
    _, metrics = dyn.loss(h[:, 1:], targets, torch.zeros(batch, steps - 1),
                          torch.full((batch, steps - 1), config.gamma), torch.ones(batch, steps - 1))
    assert metrics["dyn_z_loss"].item() == pytest.approx(config.z_categoricals * math.log(config.z_categories), rel=1e-5)
    assert metrics["dyn_reward_loss"].item() == pytest.approx(10 * 0.5 * math.log(2 * math.pi), rel=1e-5)
    p = torch.sigmoid(torch.tensor(config.gamma)).item()
    bce = -(config.gamma * math.log(p) + (1 - config.gamma) * math.log(1 - p))
    assert metrics["dyn_discount_loss"].item() == pytest.approx(50 * bce, rel=1e-5)
    assert 50 * bce == pytest.approx(16.29, abs=0.01)  # spec §12.4


def test_attention_mask_window_and_episode_ends():
    ends = torch.zeros(1, 30, dtype=torch.bool)
    allowed = attention_mask(3 * 20 + 2, 3 * 20 + 2, ends, memory_length=16)[0]
    z_token, r_token = 3 * 19, 3 * 19 + 2 - 3  # z of step 19, r of step 18
    assert allowed[z_token].nonzero().min().item() == z_token - 51 and allowed[z_token, z_token]
    assert not allowed[z_token, z_token + 1]
    assert allowed[r_token].nonzero().min().item() == 3 * (18 - 16)
    ends[0, 4] = True  # step 4 ended: steps >= 5 see only steps >= 5
    allowed = attention_mask(3 * 8 + 2, 3 * 8 + 2, ends, memory_length=16)[0]
    assert not allowed[3 * 5, : 3 * 5].any() and allowed[3 * 5, 3 * 5]
    assert allowed[3 * 4 + 2, : 3 * 4 + 3].all()  # r_4 still sees its own episode
    assert not allowed[3 * 7 + 1, 3 * 4 + 2]


def _random_stream(config, batch: int, steps: int, ends: torch.Tensor):
    z = torch.nn.functional.one_hot(torch.randint(0, config.z_categories, (batch, steps, config.z_categoricals)),
                                    config.z_categories).float().flatten(-2)
    return z, torch.randint(0, 3, (batch, steps)), torch.randn(batch, steps - 1), ends


def test_masks_stop_attention_across_episode_boundaries():
    config = replace(tiny(), dyn_dropout=0.0)
    dyn = DynamicsModel(config, num_actions=3).eval()
    steps, k = 8, 3
    ends = torch.zeros(2, steps - 1, dtype=torch.bool)
    ends[:, k] = True
    z, a, r, _ = _random_stream(config, 2, steps, ends)
    h = dyn.forward_sequence(z, a, r, ends)
    z2, a2, r2 = z.clone(), a.clone(), r.clone()
    z2[:, : k + 1] = z2[:, : k + 1].roll(1, dims=-1)
    a2[:, : k + 1] = (a2[:, : k + 1] + 1) % 3
    r2[:, : k + 1] += 1.0
    h2 = dyn.forward_sequence(z2, a2, r2, ends)
    assert torch.allclose(h[:, k + 1:], h2[:, k + 1:], atol=1e-5)
    assert not torch.allclose(h[:, : k + 1], h2[:, : k + 1], atol=1e-3)
    h3 = dyn.forward_sequence(z2, a2, r2, torch.zeros_like(ends))  # without the end, the change propagates
    assert not torch.allclose(h[:, k + 1:], h3[:, k + 1:], atol=1e-3)


@pytest.mark.parametrize("memory_length", [3, 16])
def test_memory_inference_equals_full_recompute(memory_length):
    config = replace(tiny(), dyn_dropout=0.0, wm_memory_length=memory_length)
    dyn = DynamicsModel(config, num_actions=3).eval()
    steps = memory_length + 6  # longer than the memory: exercises the truncation and the window
    ends = torch.rand(2, steps - 1) < 0.15
    z, a, r, _ = _random_stream(config, 2, steps, ends)
    full = dyn.forward_sequence(z, a, r, ends)
    with torch.no_grad():
        h, memory = dyn.start(z[:, 0], a[:, 0])
        hs = [h]
        history = ends[:, :1]
        for t in range(1, steps):
            h, memory = dyn.step(memory, history, r[:, t - 1], z[:, t], a[:, t])
            hs.append(h)
            assert memory[0].shape[1] == min(3 * t + 2, config.memory_tokens)
            if t < steps - 1:
                history = torch.cat([history, ends[:, t:t + 1]], 1)[:, -(memory_length + 1):]
    assert torch.allclose(torch.stack(hs, 1), full, atol=1e-5)


def test_imagination_shapes_weights_and_fresh_starts():
    config = replace(tiny(), dyn_dropout=0.0)
    dyn = DynamicsModel(config, num_actions=3)
    ac = ActorCritic(config, num_actions=3)
    batch, horizon = 5, 6
    z = sample_onehot(torch.zeros(batch, config.z_categoricals, config.z_categories)).flatten(-2)
    a0, r0, d0 = torch.zeros(batch, dtype=torch.long), torch.zeros(batch), torch.zeros(batch, dtype=torch.bool)
    fresh_calls = []

    def fresh(n):
        fresh_calls.append(n)
        return torch.zeros(n, config.z_dim)

    for g, expect_end in ((0.99, False), (0.05, True)):
        with torch.no_grad():
            dyn.g_head.layers[-1].weight.zero_()
            dyn.g_head.layers[-1].bias.fill_(math.log(g / (1 - g)))
        fresh_calls.clear()
        out = imagine(dyn, ac, z, a0, r0, d0, z, horizon, torch.Generator().manual_seed(0), fresh)
        assert out.z.shape == (batch, horizon + 1, config.z_dim) and out.actions.shape == (batch, horizon)
        assert out.actions.dtype == torch.long and out.hiddens.shape == (batch, horizon, config.dyn_embed_dim)
        if expect_end:  # c = g < 0.1 at once: every step ends, weights stay 1, fresh latents replace z
            assert out.ends.all() and torch.allclose(out.weights, torch.ones(batch, horizon))
            assert fresh_calls == [batch] * horizon and torch.all(out.z[:, 1:] == 0)
        else:  # weights are the cumulative discounts g^(t-1)
            assert not out.ends.any() and not fresh_calls
            expected = torch.tensor([g ** t for t in range(horizon)]).expand(batch, horizon)
            assert torch.allclose(out.weights, expected, atol=1e-5)


def test_gae_matches_explicit_sum():
    torch.manual_seed(0)
    rewards, discounts = torch.randn(3, 5), torch.rand(3, 5)
    values, lam = torch.randn(3, 6), 0.95
    advantages = gae(rewards, values, discounts, lam)
    deltas = rewards + discounts * values[:, 1:] - values[:, :-1]
    for t in range(5):
        expected = torch.zeros(3)
        factor = torch.ones(3)
        for k in range(t, 5):
            expected += factor * deltas[:, k]
            factor = factor * lam * discounts[:, k]
        assert torch.allclose(advantages[:, t], expected, atol=1e-6)
