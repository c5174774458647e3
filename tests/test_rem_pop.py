"""REM world model: POP training forward vs step-by-step inference, state invariance, imagination."""
import math

import pytest
import torch

from agents.rem.config import ControllerConfig, WorldModelConfig, atari100k
from agents.rem.controller import LatentActorCritic, imagine
from agents.rem.tokenizer import Tokenizer
from agents.rem.world_model import POPWorldModel
from agents.rem.config import TokenizerConfig

torch.set_num_threads(1)
K = 16  # tokens per frame in the small models below (the code is generic in K)


def small_world_model(chunk_blocks: int = 3, actions: int = 5) -> POPWorldModel:
    torch.manual_seed(0)
    cfg = WorldModelConfig(dim=32, num_layers=2, num_heads=4, ffn_dim=64, chunk_blocks=chunk_blocks)
    return POPWorldModel(cfg, actions, vocab_size=40, tokens_per_frame=K).double().eval()


def random_sequence(blocks: int, batch: int = 2, actions: int = 5):
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 40, (batch, blocks, K), generator=gen)
    acts = torch.randint(0, actions, (batch, blocks), generator=gen)
    codebook = torch.randn(40, 32, generator=gen, dtype=torch.float64)
    return tokens, acts, codebook


def sequential_pop(wm: POPWorldModel, tokens, actions, codebook):
    """Slow reference (spec §12.3): per block, prediction tokens from the current state (state
    discarded), then the block's real tokens (state kept), all token by token (recurrent form)."""
    batch, blocks = actions.shape
    real = wm.embed_blocks(tokens, actions, codebook)
    states = wm.backbone.empty_state(batch, real.device, real.dtype)
    obs_logits, action_outputs = [], []
    for j in range(blocks):
        pred, _ = wm.backbone.forward_recurrent(wm.prediction_inputs().expand(batch, -1, -1), states, j * wm.block_len)
        obs_logits.append(wm.obs_head(pred))
        out, states = wm.backbone.forward_recurrent(real[:, j * wm.block_len:(j + 1) * wm.block_len], states,
                                                    j * wm.block_len)
        action_outputs.append(out[:, -1])
    action_outputs = torch.stack(action_outputs, 1)
    return torch.stack(obs_logits, 1), wm.reward_head(action_outputs), wm.end_head(action_outputs)


@pytest.mark.parametrize("chunk_blocks", [1, 3, 10])
def test_pop_training_forward_equals_sequential_inference(chunk_blocks):
    wm = small_world_model(chunk_blocks)
    tokens, actions, codebook = random_sequence(7)
    with torch.no_grad():
        out = wm(tokens, actions, codebook)
        obs, reward, end = sequential_pop(wm, tokens, actions, codebook)
    assert out.obs_logits.shape == (2, 7, K, 40) and out.reward_logits.shape == (2, 7, 3)
    assert out.end_logits.shape == (2, 7, 2)
    assert torch.allclose(out.obs_logits, obs, atol=1e-9)
    assert torch.allclose(out.reward_logits, reward, atol=1e-9)
    assert torch.allclose(out.end_logits, end, atol=1e-9)


def test_prediction_tokens_never_change_the_carried_state():
    wm = small_world_model()
    tokens, actions, codebook = random_sequence(6)
    with torch.no_grad():
        before = wm(tokens, actions, codebook)
        wm.prediction_tokens.weight.normal_()  # different prediction tokens
        after = wm(tokens, actions, codebook)
        assert not torch.allclose(before.obs_logits, after.obs_logits)
        assert torch.equal(before.reward_logits, after.reward_logits)  # stream A untouched
        assert torch.equal(before.end_logits, after.end_logits)
        # inference: predicting does not touch the state, and the next real block is unaffected
        real = wm.embed_blocks(tokens, actions, codebook)
        states = wm.backbone.empty_state(2, real.device, real.dtype)
        _, states = wm.observe(real[:, : 2 * wm.block_len], states, 0)
        kept = states.clone()
        wm.predict_next_logits(states, 2 * wm.block_len)
        assert torch.equal(states, kept)
        out_direct, states_direct = wm.observe(real[:, 2 * wm.block_len: 3 * wm.block_len], kept, 2 * wm.block_len)
        out_after, states_after = wm.observe(real[:, 2 * wm.block_len: 3 * wm.block_len], states, 2 * wm.block_len)
        assert torch.equal(out_direct, out_after) and torch.equal(states_direct, states_after)


def test_imagination_calls_agree_with_training_forward():
    """Spec §12.4: context of 2 blocks, then one observe + one predict call per block."""
    wm = small_world_model()
    tokens, actions, codebook = random_sequence(5)
    with torch.no_grad():
        train = wm(tokens, actions, codebook)
        real = wm.embed_blocks(tokens, actions, codebook)
        states = wm.backbone.empty_state(2, real.device, real.dtype)
        out, states = wm.observe(real[:, : 2 * wm.block_len], states, 0)
        assert torch.allclose(wm.reward_head(out[:, -1]), train.reward_logits[:, 1], atol=1e-9)
        for block in range(2, 5):
            logits = wm.predict_next_logits(states, block * wm.block_len)
            assert torch.allclose(logits, train.obs_logits[:, block], atol=1e-9)
            out, states = wm.observe(real[:, block * wm.block_len:(block + 1) * wm.block_len], states,
                                     block * wm.block_len)
            assert torch.allclose(wm.end_head(out[:, -1]), train.end_logits[:, block], atol=1e-9)


def test_imagination_makes_two_world_model_calls_per_step_and_has_paper_shapes():
    torch.manual_seed(0)
    tok_cfg = TokenizerConfig(base_channels=4, embed_dim=32, vocab_size=40, norm_groups=4)
    tokenizer = Tokenizer(tok_cfg).eval()
    wm = POPWorldModel(WorldModelConfig(dim=32, num_layers=2, num_heads=4, ffn_dim=64), 5, 40,
                       tokenizer.tokens_per_frame).eval()
    cc = ControllerConfig(conv_channels=(8, 8), hidden_dim=16, burn_in=4)
    controller = LatentActorCritic(cc, 32, tokenizer.grid, 5)
    tokens = torch.randint(0, 40, (3, 5, 64))
    mask = torch.tensor([[False, True, True, True, True]] * 3)
    rollout = imagine(tokenizer, wm, controller, cc, 2, tokens, torch.randint(0, 5, (3, 5)), mask)
    assert rollout.world_model_calls == 17  # 9 state-updating + 8 prediction calls (spec §12.6)
    assert rollout.logits.shape == (3, 9, 5) and rollout.values.shape == (3, 9)
    assert rollout.frames_tokens.shape == (3, 9, 64)
    assert set(rollout.rewards.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert set(rollout.ends.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(rollout.frames_tokens[:, 0], tokens[:, -1])
    assert rollout.values.requires_grad and not rollout.rewards.requires_grad


@pytest.mark.parametrize("token_temperature", [1e-6, 1.0])
def test_imagined_frames_follow_the_token_temperature_not_the_action_temperature(token_temperature):
    """At a near-zero token temperature every imagined frame is M's argmax, as the training forward over the same
    frames and actions computes it, whatever the action temperature; at temperature 1 (untrained M) it is not."""
    torch.manual_seed(0)
    tokenizer = Tokenizer(TokenizerConfig(base_channels=4, embed_dim=32, vocab_size=40, norm_groups=4)).eval()
    wm = POPWorldModel(WorldModelConfig(dim=32, num_layers=2, num_heads=4, ffn_dim=64), 5, 40,
                       tokenizer.tokens_per_frame).eval()
    cc = ControllerConfig(conv_channels=(8, 8), hidden_dim=16, burn_in=4, imagine_temperature=1.0,
                          imagine_token_temperature=token_temperature)
    controller = LatentActorCritic(cc, 32, tokenizer.grid, 5)
    tokens, actions = torch.randint(0, 40, (3, 5, 64)), torch.randint(0, 5, (3, 5))
    rollout = imagine(tokenizer, wm, controller, cc, 2, tokens, actions, torch.ones(3, 5, dtype=torch.bool))
    frames = torch.cat([tokens[:, -2:-1], rollout.frames_tokens], dim=1)  # real frame -2, real frame -1, imagined
    steps = torch.cat([actions[:, -2:-1], rollout.actions], dim=1)
    with torch.no_grad():
        argmax = wm(frames, steps, tokenizer.codebook).obs_logits[:, 2:].argmax(-1)
    assert len(rollout.actions.unique()) > 1  # actions were sampled at temperature 1
    agree = torch.equal(argmax, rollout.frames_tokens[:, 1:])
    assert agree == (token_temperature < 1e-3)


def test_paper_parameter_counts():
    cfg = atari100k()
    tokenizer = Tokenizer(cfg.tokenizer)
    wm = POPWorldModel(cfg.world_model, 18, 512, tokenizer.tokens_per_frame)
    controller = LatentActorCritic(cfg.controller, 256, tokenizer.grid, 18)

    def count(*modules):
        return sum(p.numel() for m in modules for p in m.parameters())

    assert tokenizer.tokens_per_frame == 64
    assert count(tokenizer.encoder) == 1_754_048
    assert count(tokenizer.decoder) == 1_172_963
    assert count(tokenizer.pre_quant, tokenizer.post_quant, tokenizer.quantizer) == 262_656
    assert count(tokenizer) == 3_189_667
    assert count(wm.backbone) == 4_277_760
    assert count(wm.obs_head, wm.reward_head, wm.end_head) == 330_245
    assert count(wm) == 4_760_581
    assert count(controller) == 4_586_707
    assert count(LatentActorCritic(cfg.controller, 256, 8, 6)) == 4_568_257 + 1_025 * 6
    states = wm.backbone.empty_state(7, torch.device("cpu"))
    assert states.shape == (5, 7, 4, 64, 64)  # per layer (B, 4, 64, 64), spec §12.7


def test_initial_losses():
    """With zeroed output layers the losses are exactly ln 512, ln 3, ln 2; at the official default
    init they stay close (the heads are not zero-initialised, so only approximately)."""
    cfg = atari100k()
    torch.manual_seed(0)
    wm = POPWorldModel(cfg.world_model, 18, 512, 64).eval()
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 512, (2, 10, 64), generator=gen)
    actions = torch.randint(0, 18, (2, 10), generator=gen)
    codebook = (torch.rand(512, 256, generator=gen) * 2 - 1) / 512
    rewards = torch.tensor([[0.0, 1.0, -3.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0]] * 2)
    ends = torch.zeros(2, 10, dtype=torch.bool)
    ends[:, -1] = True
    valid = torch.ones(2, 10, dtype=torch.bool)
    with torch.no_grad():
        _, default = wm.loss(tokens, actions, rewards, ends, valid, codebook)
        for head in (wm.obs_head, wm.reward_head, wm.end_head):
            head[-1].weight.zero_()
            head[-1].bias.zero_()
        _, zeroed = wm.loss(tokens, actions, rewards, ends, valid, codebook)
    assert float(zeroed["world_model/obs_ce"]) == pytest.approx(math.log(512), abs=1e-5)
    assert float(zeroed["world_model/reward_ce"]) == pytest.approx(math.log(3), abs=1e-5)
    assert float(zeroed["world_model/end_ce"]) == pytest.approx(math.log(2), abs=1e-5)
    assert abs(float(default["world_model/obs_ce"]) - math.log(512)) < 0.5


def test_loss_ignores_context_and_padding_blocks():
    wm = small_world_model()
    tokens, actions, codebook = random_sequence(6)
    rewards, ends = torch.zeros(2, 6), torch.zeros(2, 6, dtype=torch.bool)
    valid = torch.ones(2, 6, dtype=torch.bool)
    valid[:, 4:] = False
    with torch.no_grad():
        loss, _ = wm.loss(tokens, actions, rewards, ends, valid, codebook)
        changed_pad = tokens.clone()
        changed_pad[:, 4:] = 0  # padded blocks: neither inputs (right of every loss) nor targets matter
        loss_pad, _ = wm.loss(changed_pad, actions, rewards, ends, valid, codebook)
    assert torch.allclose(loss, loss_pad)
    with pytest.raises(ValueError, match="no real block"):
        wm.loss(tokens, actions, rewards, ends, torch.zeros_like(valid), codebook)
