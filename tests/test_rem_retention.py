"""REM retention: the three forms agree, decays/rotation are the library's, per-block states are exact."""
import math

import pytest
import torch

from agents.rem.retention import (MultiScaleRetention, block_end_states, head_decays, retention_chunkwise,
                                  retention_parallel, rotate)
from agents.rem.retnet import RetNet

torch.set_num_threads(1)


def test_head_decays_match_library_values():
    expected = torch.tensor([0.968750, 0.987598, 0.995078, 0.998047], dtype=torch.float64)
    assert torch.allclose(head_decays(4), expected, atol=1e-6)


def test_rotation_makes_scores_depend_on_relative_position_only():
    torch.manual_seed(0)
    thetas = 1.0 / (10000 ** torch.linspace(0, 1, 32, dtype=torch.float64))
    q, k = torch.randn(64, dtype=torch.float64), torch.randn(64, dtype=torch.float64)

    def score(n, m):
        return rotate(q, torch.tensor(n), thetas) @ rotate(k, torch.tensor(m), thetas)

    assert score(7, 3) == pytest.approx(score(104, 100), abs=1e-9)
    assert score(7, 3) != pytest.approx(score(7, 4), abs=1e-3)
    # pair (0, 1) at position 1 is rotated by exactly theta_0 = 1 radian
    rotated = rotate(torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor(1), thetas[:1])
    assert torch.allclose(rotated, torch.tensor([math.cos(1.0), math.sin(1.0)], dtype=torch.float64))


@pytest.mark.parametrize("chunk", [1, 4, 16])
def test_parallel_recurrent_chunkwise_agree(chunk):
    torch.manual_seed(0)
    msr = MultiScaleRetention(64, 4, dropout=0.0).double().eval()
    y = torch.randn(2, 32, 64, dtype=torch.float64)
    zero = torch.zeros(2, 4, 16, 16, dtype=torch.float64)
    positions = torch.arange(32)
    parallel, _ = msr(y, zero, positions, "parallel")
    recurrent, rec_state = msr(y, zero, positions, "recurrent")
    outs, state = [], zero
    for s in range(0, 32, chunk):
        out, state = msr(y[:, s:s + chunk], state, positions[s:s + chunk], "chunkwise")
        outs.append(out)
    chunkwise = torch.cat(outs, dim=1)
    assert torch.allclose(parallel, recurrent, atol=1e-8)
    assert torch.allclose(parallel, chunkwise, atol=1e-8)
    assert torch.allclose(rec_state, state, atol=1e-8)


def test_chunkwise_kernel_matches_explicit_formula():
    torch.manual_seed(1)
    gammas = head_decays(2)
    q, k, v = (torch.randn(1, 2, 5, 4, dtype=torch.float64) for _ in range(3))
    state = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    out, new_state = retention_chunkwise(q, k, v, state, gammas)
    for h in range(2):
        g = gammas[h]
        s = state[0, h].clone()
        for b in range(5):
            s = g * s + torch.outer(k[0, h, b], v[0, h, b])
            assert torch.allclose(out[0, h, b], q[0, h, b] @ s)
        assert torch.allclose(new_state[0, h], s)
    assert torch.allclose(retention_parallel(q, k, v, gammas), retention_chunkwise(q, k, v, 0 * state, gammas)[0])


def test_per_block_states_equal_chunkwise_states():
    """Spec §12.2 with 65-token blocks: block-end states and stream-A outputs equal plain chunkwise."""
    torch.manual_seed(2)
    net = RetNet(2, 64, 4, 128, dropout=0.0).double().eval()
    x = torch.randn(2, 10 * 65, 64, dtype=torch.float64)
    states = net.empty_state(2, x.device, x.dtype)
    out_blocks, after, before = net.forward_chunk_blocks(x, states, 0, 65)
    out_plain, after_plain = net.forward_chunk(x, states, 0)
    assert torch.allclose(out_blocks, out_plain, atol=1e-9)
    assert torch.allclose(after, after_plain, atol=1e-9)
    # the state before block j equals the chunkwise state after the first j blocks
    for j in (1, 4, 9):
        _, prefix_state = net.forward_chunk(x[:, : j * 65], states, 0)
        assert torch.allclose(before[:, :, j], prefix_state, atol=1e-9)
    assert torch.count_nonzero(before[:, :, 0]) == 0


def test_block_end_states_rejects_partial_blocks():
    k = torch.zeros(1, 1, 10, 2)
    with pytest.raises(ValueError, match="65-token blocks"):
        block_end_states(k, k, torch.zeros(1, 1, 2, 2), head_decays(1), 65)


def test_layers_start_identical_and_no_final_norm():
    net = RetNet(5, 256, 4, 1024, dropout=0.1)
    first = dict(net.layers[0].named_parameters())
    for layer in net.layers[1:]:
        for name, param in layer.named_parameters():
            assert torch.equal(param, first[name])
    assert sum(p.numel() for p in net.parameters()) == 4_277_760
    assert sum(p.numel() for p in net.layers[0].parameters()) == 855_552
