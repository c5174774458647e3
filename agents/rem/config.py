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
    norm: str = "group"  # "group" (official GroupNorm) or "none" (identity; collapsed `tiny`'s V to one code)
    norm_groups: int = 8  # GroupNorm groups in encoder and decoder (spec D13)
    commitment_beta: float = 1.0  # weight of MSE(h, sg(e))
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
    imagine_temperature: float = 1.0  # sampling temperature of actions and tokens in imagination
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
    """Same code paths at CPU scale: 8x8 tokens over a 32-entry codebook, 2 narrow layers, short epochs.

    Sized for the sanity suite (Catch, 20k steps, <= ~25 min on a shared CPU); every value that differs
    from `atari100k` is a size, a schedule or a rate (see the comments; RESULTS_rem.md for the runs).
    """
    return RemConfig(
        tokenizer=TokenizerConfig(
            base_channels=4, embed_dim=32, vocab_size=32, norm_groups=4,  # CPU-sized V (embed_dim = M's dim)
            perceptual_weight=0.0,  # no LPIPS weights needed on the sanity task; L1/MSE keeps 8x8 objects
            lr=3e-3,  # 1e-3 left the ball/paddle cells blurred after 600 updates; 3e-3 halves their error
            batch_size=16,
            updates_per_epoch=25,  # ~600 updates over the run: V is sharp by epoch ~5, before C starts
            start_after_epoch=0),
        world_model=WorldModelConfig(
            dim=32, num_layers=2, num_heads=2, ffn_dim=64, segment_blocks=8,  # CPU-sized M
            lr=1e-3, batch_size=8,
            updates_per_epoch=35,  # ~800 updates: reward CE ~0.06 by epoch ~10; catches only partly told from misses
            start_after_epoch=1),
        controller=ControllerConfig(
            conv_channels=(16, 8), hidden_dim=64, burn_in=4,  # CPU-sized C; 4 real frames suffice (no memory)
            lr=3e-3,  # ~500 updates in all (paper: 55k): 1e-3 left the policy near uniform (entropy 1.04)
            batch_size=32,  # was 16: more imagined trajectories per update, as C gets only ~500 updates
            updates_per_epoch=25,  # C is the costliest per update (~1 s, imagination); fits the 25-min budget
            start_after_epoch=5),  # C starts once M's reward CE is well below its constant-prediction value
        steps_per_epoch=1000,  # 20 collection epochs at the 20k sanity budget (+4 train-only epochs)
        collect_epochs=20, total_epochs=24, from_paper=False,
    )


PROFILES = {"atari100k": atari100k, "crafter": crafter, "tiny": tiny}


def validate(config: RemConfig) -> RemConfig:
    if config.tokenizer.norm not in NORMS:
        raise ValueError(f"rem config: tokenizer.norm: expected one of {', '.join(NORMS)}, "
                         f"got {config.tokenizer.norm!r}")
    if config.tokenizer.embed_dim != config.world_model.dim:
        raise ValueError(f"rem config: tokenizer.embed_dim ({config.tokenizer.embed_dim}) must equal "
                         f"world_model.dim ({config.world_model.dim}): M embeds tokens by their codebook vectors")
    if config.total_epochs < config.collect_epochs:
        raise ValueError("rem config: total_epochs must be >= collect_epochs")
    if config.world_model.segment_blocks <= config.world_model.context_blocks:
        raise ValueError("rem config: world_model.segment_blocks must exceed context_blocks")
    return config


__all__ = ["RemConfig", "TokenizerConfig", "WorldModelConfig", "ControllerConfig", "PROFILES"]
