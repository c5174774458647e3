"""IRIS configuration: one typed dataclass per component and the profiles (spec iris.md §4–§7, §10, §11.3)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TokenizerConfig:
    vocab_size: int = 512  # codebook entries N
    embed_dim: int = 512  # codebook vector size d
    z_channels: int = 512  # encoder output channels (before the 1x1 pre-quant conv)
    ch: int = 64  # base channels
    ch_mult: tuple[int, ...] = (1, 1, 1, 1, 1)  # channel multiplier per resolution level (len-1 downsamplings)
    num_res_blocks: int = 2  # res blocks per encoder level (decoder uses num_res_blocks + 1)
    attn_resolutions: tuple[int, ...] = (8, 16)  # resolutions with self-attention after each res block
    resolution: int = 64  # input side in pixels
    dropout: float = 0.0  # res-block dropout
    norm_groups: int = 32  # GroupNorm groups (taming: 32)
    beta: float = 1.0  # commitment weight
    perceptual_weight: float = 1.0  # LPIPS weight; 0 turns the perceptual term off
    lpips_dropout_in_train: bool = True  # official quirk: LPIPS lin-layer dropout active while training (§4.3)
    weights_dir: str = ""  # LPIPS/VGG16 weights directory ("" -> $WMBENCH_WEIGHTS_DIR or ~/.cache/wmbench/weights)

    @property
    def tokens_per_frame(self) -> int:
        side = self.resolution // 2 ** (len(self.ch_mult) - 1)
        return side * side


@dataclass(frozen=True)
class WorldModelConfig:
    max_blocks: int = 20  # context L in timesteps (17 tokens each)
    num_layers: int = 10  # transformer blocks
    num_heads: int = 4  # attention heads
    embed_dim: int = 256  # transformer width
    embed_dropout: float = 0.1  # dropout on token + position embeddings
    attn_dropout: float = 0.1  # attention-probability dropout
    resid_dropout: float = 0.1  # residual dropout (after attention projection and MLP)


@dataclass(frozen=True)
class ActorCriticConfig:
    channels: tuple[int, ...] = (32, 32, 64, 64)  # CNN trunk widths
    lstm_dim: int = 512  # LSTMCell hidden size
    horizon: int = 20  # imagination horizon H
    burn_in: int = 20  # real frames fed to the LSTM before imagining
    gamma: float = 0.995  # discount
    lambda_: float = 0.95  # λ of the λ-returns
    entropy_weight: float = 0.001  # η
    collect_temperature: float = 1.0  # sampling temperature when collecting
    collect_epsilon: float = 0.01  # probability of a uniformly random action when collecting
    eval_temperature: float = 0.5  # paper evaluation policy
    freeway_collect_temperature: float = 0.01  # paper App. H: applied when the env is Freeway (§2.2)


@dataclass(frozen=True)
class ComponentSchedule:
    start_after_epoch: int  # first trained in epoch start_after_epoch + 1 (paper epochs; scaled by budget)
    steps_per_epoch: int  # gradient steps per epoch
    batch_size: int  # tokenizer: frames; world model / actor-critic: segments
    lr: float = 1e-4  # constant learning rate
    weight_decay: float = 0.0  # world model: 0.01 on Linear weights only
    max_grad_norm: float = 10.0  # gradient-norm clip
    steps_first_epoch: int = 0  # >0: gradient steps when the component trains in epoch 1 (Crafter)


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 600  # total epochs at the paper budget
    collection_epochs: int = 500  # epochs that collect (the rest are train-only)
    steps_per_epoch: int = 200  # agent steps collected per epoch (summed over envs)
    first_epoch_steps: int = 0  # >0: steps collected in epoch 1 (Crafter: 100k)
    first_epoch_random: bool = False  # epoch-1 collection with uniform random actions
    num_collect_envs: int = 1  # parallel collection environments
    tokenizer: ComponentSchedule = field(default_factory=lambda: ComponentSchedule(5, 200, 256))
    world_model: ComponentSchedule = field(
        default_factory=lambda: ComponentSchedule(25, 200, 64, weight_decay=0.01))
    actor_critic: ComponentSchedule = field(default_factory=lambda: ComponentSchedule(50, 200, 64))


@dataclass(frozen=True)
class IrisConfig:
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    actor_critic: ActorCriticConfig = field(default_factory=ActorCriticConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    require_perceptual_weights: bool = True  # paper profiles: stop before training if LPIPS weights are missing
    tf32: bool = True  # TF32 matmuls on Ampere+ (the official torch 1.11 runs had them on by default, spec §7)

    @property
    def num_collect_envs(self) -> int:
        return self.training.num_collect_envs


def atari100k() -> IrisConfig:
    return IrisConfig()


def crafter() -> IrisConfig:
    """IRIS baseline of the Δ-IRIS paper (App. E): width 512 / 8 heads; loop of Δ-IRIS Crafter Table 5."""
    return IrisConfig(
        world_model=WorldModelConfig(num_heads=8, embed_dim=512),
        # Δ-IRIS Crafter values (delta_iris.md §6.2): γ 0.997, H 15, η 0.001. Burn-in stays IRIS's 20
        # (App. E does not say it changed).
        actor_critic=ActorCriticConfig(horizon=15, gamma=0.997),
        training=TrainingConfig(
            epochs=1000, collection_epochs=991, steps_per_epoch=10_000, first_epoch_steps=100_000,
            first_epoch_random=True, num_collect_envs=16,
            # Batch sizes: IRIS's tokenizer batch of 256 frames is kept (Δ-IRIS's 32 x 21 is a sequence
            # batch of a different tokenizer); world model 32 segments and actor-critic 86 as Δ-IRIS.
            tokenizer=ComponentSchedule(0, 500, 256, steps_first_epoch=5_000),
            world_model=ComponentSchedule(0, 500, 32, weight_decay=0.01, steps_first_epoch=2_500),
            actor_critic=ComponentSchedule(0, 500, 86),
        ),
    )


def tiny() -> IrisConfig:
    """Same code paths at CPU scale: a small tokenizer and transformer, short schedule, no LPIPS.

    The schedule is written for the 20k-step sanity run (20 collection epochs of 1,000 steps); other
    budgets scale it (agents/iris/schedule.py). lr 1e-3 instead of 1e-4: small nets, few updates.
    Known limitation (benchmarks/RESULTS_iris.md): without LPIPS the L1-only VQ tokenizer collapses to an
    all-black reconstruction (tokens carry no ball/paddle information), so `tiny` does not learn Catch.
    """
    return IrisConfig(
        # The paper's 4x4 token grid: with 2x2 tokens the 8x8-pixel Catch ball was lost by the L1-only tokenizer.
        tokenizer=TokenizerConfig(vocab_size=128, embed_dim=16, z_channels=16, ch=8, ch_mult=(1, 1, 1, 1, 1),
                                  num_res_blocks=0, attn_resolutions=(), norm_groups=4, perceptual_weight=0.0),
        world_model=WorldModelConfig(max_blocks=8, num_layers=2, num_heads=2, embed_dim=64),
        actor_critic=ActorCriticConfig(channels=(8, 16, 16, 16), lstm_dim=64, horizon=8, burn_in=4, gamma=0.97),
        training=TrainingConfig(
            # 1,000 steps per epoch: the 20k-step sanity budget gives the 20 collection epochs this schedule
            # was written for (~200 updates of each component, about 20 min on one contended CPU core);
            # 100 steps per epoch meant 200 epochs, ~2,000 updates each and well over an hour there.
            epochs=22, collection_epochs=20, steps_per_epoch=1000,
            tokenizer=ComponentSchedule(0, 10, 16, lr=1e-3),
            world_model=ComponentSchedule(1, 10, 16, lr=1e-3, weight_decay=0.01),
            actor_critic=ComponentSchedule(2, 10, 16, lr=1e-3),
        ),
        require_perceptual_weights=False,
    )
