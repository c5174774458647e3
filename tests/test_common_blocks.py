import math

import numpy as np
import pytest
import torch

from agents.common.actor_critic import IrisConvTrunk, RecurrentActorCritic
from agents.common.conv import ChannelNorm
from agents.common.optim import adamw_linear_decay
from agents.common.returns import lambda_returns
from agents.common.transformer import Transformer, TransformerConfig, init_gpt_weights
from agents.common.twohot import SymlogTwoHot, symexp, symlog, twohot_decode, twohot_encode, uniform_support
from agents.common.vq import VectorQuantizer

torch.set_num_threads(1)


def _reference_lambda(rewards, values, ends, gamma, lam):
    """Direct expansion of the λ-return definition: Σ weighted n-step returns, cut at ends."""
    b, t = values.shape
    out = np.zeros((b, t))
    for i in range(b):
        out[i, t - 1] = values[i, t - 1]
        for s in range(t - 2, -1, -1):
            cont = 1 - ends[i, s]
            out[i, s] = rewards[i, s] + gamma * cont * ((1 - lam) * values[i, s + 1] + lam * out[i, s + 1])
    return out


def test_lambda_returns_match_recursion_and_special_cases():
    g = torch.Generator().manual_seed(0)
    rewards, values = torch.randn(3, 7, generator=g), torch.randn(3, 7, generator=g)
    ends = (torch.rand(3, 7, generator=g) < 0.3).float()
    got = lambda_returns(rewards, values, ends, 0.995, 0.95)
    np.testing.assert_allclose(got.numpy(), _reference_lambda(rewards.numpy(), values.numpy(), ends.numpy(), 0.995, 0.95),
                               rtol=1e-5, atol=1e-6)
    # λ = 0: one-step TD targets; λ = 1, no ends: discounted reward sum + γ^k V_last.
    td = lambda_returns(rewards, values, torch.zeros_like(ends), 0.9, 0.0)
    torch.testing.assert_close(td[:, :-1], rewards[:, :-1] + 0.9 * values[:, 1:])
    mc = lambda_returns(rewards, values, torch.zeros_like(ends), 0.9, 1.0)
    expected0 = sum(0.9 ** k * rewards[:, k] for k in range(6)) + 0.9 ** 6 * values[:, 6]
    torch.testing.assert_close(mc[:, 0], expected0)
    # An end at step t: Λ_t = r_t exactly.
    ends2 = torch.zeros_like(ends)
    ends2[:, 2] = 1
    torch.testing.assert_close(lambda_returns(rewards, values, ends2, 0.99, 0.95)[:, 2], rewards[:, 2])


def test_lambda_returns_bootstrap_equals_extended_sequence():
    g = torch.Generator().manual_seed(1)
    rewards, values = torch.randn(2, 5, generator=g), torch.randn(2, 6, generator=g)
    ends = (torch.rand(2, 5, generator=g) < 0.3).float()
    got = lambda_returns(rewards, values[:, :5], ends, 0.997, 0.95, bootstrap=values[:, 5])
    padded = lambda_returns(torch.cat([rewards, torch.zeros(2, 1)], 1), values, torch.cat([ends, torch.zeros(2, 1)], 1),
                            0.997, 0.95)
    torch.testing.assert_close(got, padded[:, :5])
    with pytest.raises(ValueError, match="shapes differ"):
        lambda_returns(rewards, values, ends, 0.9, 0.9)


def test_symlog_twohot_roundtrip_and_delta_iris_support():
    support = uniform_support(-20, 20, 255)
    assert len(support) == 255 and (support == 0).any()
    x = torch.tensor([-1000.0, -3.7, -0.1, 0.0, 0.1, 1.0, 42.0])
    torch.testing.assert_close(symexp(symlog(x)), x, rtol=1e-5, atol=1e-5)
    target = twohot_encode(symlog(x), support)
    torch.testing.assert_close(target.sum(-1), torch.ones(len(x)))
    assert ((target > 0).sum(-1) <= 2).all()
    torch.testing.assert_close((target * support).sum(-1), symlog(x), atol=1e-5, rtol=1e-5)
    head = SymlogTwoHot()
    torch.testing.assert_close(head.predict(target.clamp_min(1e-30).log()), x, rtol=1e-4, atol=1e-4)
    assert math.isclose(head.loss(torch.zeros(4, 255), torch.randn(4)).item(), math.log(255), rel_tol=1e-6)
    # Clamping: values beyond the support land on the top edge.
    big = twohot_encode(torch.tensor([1e6]), support)
    assert big[0, -2:].sum() == pytest.approx(1.0) and twohot_decode(big.log(), support) == pytest.approx(20, abs=1e-4)


def test_vq_nearest_neighbour_straight_through_and_losses():
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 4, beta=0.25)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = vq.forward_grid(z)
    assert out.tokens.shape == (2, 9) and out.quantized.shape == z.shape
    flat = z.detach().permute(0, 2, 3, 1).reshape(-1, 4)
    brute = torch.cdist(flat, vq.codebook.weight.detach()).argmin(1)
    assert torch.equal(out.tokens.reshape(-1), brute)
    codes = vq.codebook.weight[brute].reshape(2, 3, 3, 4).permute(0, 3, 1, 2)
    torch.testing.assert_close(out.quantized, codes)
    torch.testing.assert_close(out.codebook_loss, (z.detach() - codes).pow(2).mean())
    torch.testing.assert_close(out.commitment_loss, 0.25 * (z.detach() - codes).pow(2).mean())
    out.quantized.sum().backward()  # straight-through: identity gradient to z
    torch.testing.assert_close(z.grad, torch.ones_like(z))
    torch.testing.assert_close(vq.embed_grid(out.tokens, 3, 3), codes)
    assert vq.codebook.weight.abs().max() <= 1 / 16


def test_transformer_cached_chunks_equal_full_sequence():
    torch.manual_seed(0)
    config = TransformerConfig(embed_dim=32, num_layers=2, num_heads=4, max_tokens=24)
    model = Transformer(config).eval()
    model.apply(init_gpt_weights)
    x = torch.randn(3, 20, 32)
    full = model(x)
    cache = model.empty_cache(3)
    pieces = [model(x[:, a:b], cache) for a, b in [(0, 7), (7, 8), (8, 15), (15, 20)]]
    assert cache.size == 20
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-5, rtol=1e-5)
    # Causality: changing a later token leaves earlier outputs unchanged.
    y = x.clone()
    y[:, 10] += 1
    torch.testing.assert_close(model(y)[:, :10], full[:, :10])
    with pytest.raises(RuntimeError, match="overflow"):
        model(x[:, :5], cache)


def test_actor_critic_iris_shapes_params_and_masked_burn_in():
    torch.manual_seed(0)
    trunk = IrisConvTrunk()
    net = RecurrentActorCritic(trunk, trunk.output_dim, num_actions=4)
    assert trunk.output_dim == 1024
    assert sum(p.numel() for p in net.parameters()) == 3_217_957
    frames = torch.rand(2, 3, 3, 64, 64)
    mask = torch.tensor([[False, True, True], [True, True, True]])
    state = net.burn_in(frames, mask, net.initial_state(2))
    only_real = net.burn_in(frames[:1, 1:], mask[:1, 1:], net.initial_state(1))
    torch.testing.assert_close(state[0][:1], only_real[0])
    logits, values, _ = net.step(frames[:, 0], state)
    assert logits.shape == (2, 4) and values.shape == (2, 1)
    zero = RecurrentActorCritic(IrisConvTrunk(), 1024, 17, value_outputs=255, zero_init_critic=True)
    assert zero.step(frames[:, 0], zero.initial_state(2))[1].abs().sum() == 0


def test_adamw_decays_only_linear_weights():
    model = torch.nn.Sequential(torch.nn.Embedding(5, 4), torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    groups = adamw_linear_decay(model, 1e-4, 0.01).param_groups
    decayed = {id(p) for p in groups[0]["params"]}
    assert groups[0]["weight_decay"] == 0.01 and groups[1]["weight_decay"] == 0.0
    assert decayed == {id(model[1].weight)}
    assert len(groups[1]["params"]) == 4


def test_channel_norm_normalises_each_position_over_its_channels():
    torch.manual_seed(0)
    norm = ChannelNorm(6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1.0, 1.0)
    x = torch.randn(2, 6, 3, 5) * 4 + 1
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, unbiased=False, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-6) * norm.weight[:, None, None] + norm.bias[:, None, None]
    torch.testing.assert_close(norm(x), expected)
    changed = x.clone()
    changed[0, :, 2, 4] += 10.0  # one position changes: no other output moves
    difference = (norm(changed) != norm(x)).any(dim=1)
    assert difference.sum() == 1 and difference[0, 2, 4]
