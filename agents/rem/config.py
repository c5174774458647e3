"""REM configuration: one typed dataclass per component, profiles `atari100k`, `crafter`, `tiny`.

Values of `atari100k` are the official code's (leor-c/REM @34828c3, spec §4-§8); paper/code
disagreements are resolved for the code as listed in spec §13.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from agents.common.conv import NORMS


@dataclass
class TokenizerConfig:
    base_channels: int = 32  # first conv width; each of the down blocks doubles it (32->64->128->256)
    num_down: int = 3  # EncoderBlocks (stride 2 each): 64x64 -> 8x8 token grid
    embed_dim: int = 256  # latent/codebook width (= last encoder width); also M's token width
    vocab_size: int = 512  # codebook entries N
    inner_kernel: int = 3  # kernel of each EncoderBlock's second conv and of the encoder's last conv (official 3)
    norm: str = "group"  # "group" (official GroupNorm), "channel" (per-position LayerNorm) or "none" (identity)
    norm_groups: int = 8  # GroupNorm groups in encoder and decoder (spec D13)
    commitment_beta: float = 1.0  # weight of MSE(h, sg(e))
    reconstruction_weight: float = 1.0  # weight of MSE(x, x^) (official 1)
    perceptual_weight: float = 1.0  # LPIPS term; 0 turns it off (a documented deviation)
    weights_dir: str = ""  # LPIPS weight files' directory ("" -> $WMBENCH_WEIGHTS_DIR or ~/.cache/wmbench/weights)
    lr: float = 1e-4  # AdamW learning rate
    weight_decay: float = 0.01  # AdamW default, on all parameters
    grad_clip: float = 10.0  # global grad-norm clip
    batch_size: int = 128  # single frames per update
    updates_per_epoch: int = 200  # gradient steps per epoch
    start_after_epoch: int = 5  # trains in epochs > this (on the 500-collection-epoch scale)
    stop_after_epoch: int = 0  # >0: frozen after this epoch (not scaled by the budget); 0: trains to the end


@dataclass
class WorldModelConfig:
    dim: int = 256  # token width d
    num_layers: int = 5  # RetNet layers
    num_heads: int = 4  # retention heads (head dim 64)
    ffn_dim: int = 1024  # FFN hidden width
    dropout: float = 0.1  # attention-output, residual and FFN dropout
    chunk_blocks: int = 3  # blocks per chunk in the chunkwise training forward
    segment_blocks: int = 10  # blocks per training segment
    context_blocks: int = 2  # leading blocks without loss
    lr: float = 2e-4  # AdamW learning rate
    weight_decay: float = 0.05  # on Linear weight matrices only (spec D16)
    grad_clip: float = 100.0  # global grad-norm clip
    batch_size: int = 64  # segments per update
    updates_per_epoch: int = 200  # gradient steps per epoch
    start_after_epoch: int = 25  # trains in epochs > this


@dataclass
class ControllerConfig:
    conv_channels: tuple[int, ...] = (128, 64)  # 3x3 convs over the codebook grid
    hidden_dim: int = 512  # Linear after flatten, and LSTMCell width
    burn_in: int = 20  # observation-only burn-in frames before imagination
    imagine_horizon: int = 10  # official `imagine_horizon`: 10 - context 2 + 1 = 9 imagined decisions
    gamma: float = 0.995  # discount
    lambda_: float = 0.95  # lambda-return mixing
    entropy_weight: float = 0.001  # entropy bonus
    imagine_temperature: float = 1.0  # sampling temperature of C's actions in imagination
    imagine_token_temperature: float = 1.0  # sampling temperature of M's next-frame tokens in imagination
    collect_temperature: float = 1.0  # acting temperature while collecting
    freeway_collect_temperature: float = 0.01  # paper A.5: collection temperature when the game is Freeway
    eval_temperature: float = 0.5  # acting temperature in evaluation
    epsilon: float = 0.01  # uniform-random executed action probability while collecting
    lr: float = 1e-4  # AdamW learning rate
    weight_decay: float = 0.01  # AdamW default
    grad_clip: float = 3.0  # global grad-norm clip
    batch_size: int = 128  # imagined trajectories per update
    updates_per_epoch: int = 100  # gradient steps per epoch
    start_after_epoch: int = 50  # trains in epochs > this


@dataclass
class RemConfig:
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    steps_per_epoch: int = 200  # env steps collected per collection epoch
    collect_epochs: int = 500  # collection epochs at the reference budget (100k steps)
    total_epochs: int = 600  # collection epochs + 100 train-only epochs at the reference budget
    num_collect_envs: int = 1  # parallel training envs
    from_paper: bool = True  # False where the profile is an adaptation


def atari100k() -> RemConfig:
    return RemConfig()


def crafter() -> RemConfig:
    """NOT from the paper (REM reports Atari 100k only): the Atari model and schedule, 1M steps.

    Adaptation: 5000 collection epochs of 200 steps (1M agent steps) + 1000 train-only epochs keep
    the Atari ratio of updates to data; the env's reward is used through sign() as on Atari.
    """
    return RemConfig(collect_epochs=5000, total_epochs=6000, from_paper=False)


def tiny() -> RemConfig:
    """Same code paths at CPU scale (sanity Catch, 20k steps, ~35-45 min on one CPU core). Not a paper configuration.

    8x8 tokens over a 32-entry codebook, 2 narrow RetNet layers, 10 collection epochs of 2,000 steps.
    Deviations that are not sizes, rates or schedules: V's normalisation, its 1x1 inner convolutions and its
    weighted MSE, each explained next to its value, and a token temperature of 0.5 in imagination. Finals over 100
    episodes: +0.72, +2.98, +2.88, +0.96 (seeds 0-3); random -2.25, optimal +3 (benchmarks/RESULTS_rem.md).
    """
    return RemConfig(
        tokenizer=TokenizerConfig(
            base_channels=4, embed_dim=32, vocab_size=32,  # CPU-sized V (embed_dim = M's dim)
            # A local V. With the official GroupNorm (frame-wide statistics) and 3x3 inner convs (a 61-pixel
            # receptive field) every code of a Catch frame depended on where the ball and paddle were: a one-cell
            # paddle move changed 8-62% of the codes of every row, and M learned only the per-cell marginal.
            # Per-position channel norm and 1x1 inner convs (17 pixels: a code sees its 8x8 cell and its
            # neighbours' edges) code a frame with ~5 codes (one for the background, one for the right border
            # column), and rows 0-5 never see the paddle. With no norm at all V collapsed to one code (ninth session).
            norm="channel", inner_kernel=1,
            # x16 MSE pulls V off the all-black optimum (ball and paddle are 3% of the pixels), as LPIPS does in
            # the paper; LPIPS is off (its VGG16 weights are a download). Unweighted (lr 3e-3), the channel-norm V
            # stayed black for 900 updates; weighted, it draws every Catch cell right after 200-300 updates.
            reconstruction_weight=16.0, perceptual_weight=0.0,
            lr=1e-3,  # 3e-3 collapsed the weighted V to one code
            batch_size=16,
            # 450 updates in each of epochs 1-2, then frozen: a drifting V re-labels the tokens M is learning. With
            # 300 (600 in all) seed 0's V drew 49 of 64 landed-ball frames wrong, with 450 14 of them.
            updates_per_epoch=450, start_after_epoch=0,
            stop_after_epoch=2),
        world_model=WorldModelConfig(
            dim=32, num_layers=2, num_heads=2, ffn_dim=64, segment_blocks=8,  # CPU-sized M
            dropout=0.0,  # 0.1 cost a fifth of an update's time; nothing to regularise on a deterministic game
            lr=1e-3, batch_size=16,
            # 600 x 16 segments per epoch, 6,600 updates in all: on local tokens M leaves the per-cell-marginal
            # plateau after ~1,750 updates of 16. With 400 per epoch its token CE was 0.07-0.15 when C started and C's
            # policy collapsed on M's errors in two seeds of three; with 600 it is 0.03-0.06 (RESULTS_rem.md).
            updates_per_epoch=600,
            start_after_epoch=1),
        controller=ControllerConfig(
            conv_channels=(16, 8), hidden_dim=64, burn_in=4,  # CPU-sized C; 4 real frames suffice (no memory)
            # gamma 0.95 and entropy weight 0.01, as IRIS's and Delta-IRIS's `tiny` (~10^3 updates, not 55k). With
            # the TRUE game as its imagination, this C plays Catch optimally after ~1,300 updates of 32 at lr 1e-3
            # (flat for the first ~700); at the official gamma 0.995 it had not left random after 1,500, and at lr
            # 3e-3 with entropy weight 0.001 its policy collapsed to a losing one within 150 (RESULTS_rem.md,
            # eleventh session). A batch of 128 did not shorten the flat phase in updates.
            gamma=0.95, entropy_weight=0.01, lr=1e-3,
            # M's next-frame tokens at 0.5, not 1: POP samples a frame's 64 tokens independently, and at token CE
            # ~0.025 (~1.6 nats per frame) sampled frames often gained or lost a ball, so M paid a ball-tracking
            # policy -0.5 to -0.8 per 9 imagined steps against +0.88 in the real game. Seed 0 at 1: final -0.44,
            # C's entropy 0.85 -> 0.38; at 0.5: +0.72, C's entropy stayed ~1 for two epochs (RESULTS_rem.md).
            imagine_token_temperature=0.5,
            batch_size=32,
            # 300 x 32 per epoch in epochs 8-12: 1,500 updates (~0.3 s each, imagination included) from M's
            # 3,600th update. Trained afresh on a final M of the tenth-session profile, C was at random level for
            # ~700 updates, then +0.12 in the real game at 1,000 and +2.81 at 1,300.
            updates_per_epoch=300,
            start_after_epoch=7),
        steps_per_epoch=2000,  # 10 collection epochs at the 20k sanity budget (+2 train-only epochs)
        collect_epochs=10, total_epochs=12, from_paper=False,
    )


PROFILES = {"atari100k": atari100k, "crafter": crafter, "tiny": tiny}


def validate(config: RemConfig) -> RemConfig:
    if config.tokenizer.norm not in NORMS:
        raise ValueError(f"rem config: tokenizer.norm: expected one of {', '.join(NORMS)}, "
                         f"got {config.tokenizer.norm!r}")
    if config.tokenizer.inner_kernel < 1 or config.tokenizer.inner_kernel % 2 == 0:
        raise ValueError(f"rem config: tokenizer.inner_kernel: expected an odd kernel size >= 1, "
                         f"got {config.tokenizer.inner_kernel}")
    if config.tokenizer.reconstruction_weight <= 0:
        raise ValueError(f"rem config: tokenizer.reconstruction_weight: expected > 0, "
                         f"got {config.tokenizer.reconstruction_weight}")
    if config.tokenizer.embed_dim != config.world_model.dim:
        raise ValueError(f"rem config: tokenizer.embed_dim ({config.tokenizer.embed_dim}) must equal "
                         f"world_model.dim ({config.world_model.dim}): M embeds tokens by their codebook vectors")
    if config.total_epochs < config.collect_epochs:
        raise ValueError("rem config: total_epochs must be >= collect_epochs")
    if config.world_model.segment_blocks <= config.world_model.context_blocks:
        raise ValueError("rem config: world_model.segment_blocks must exceed context_blocks")
    return config


__all__ = ["RemConfig", "TokenizerConfig", "WorldModelConfig", "ControllerConfig", "PROFILES"]
