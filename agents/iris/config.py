"""IRIS configuration: one typed dataclass per component and the profiles (spec iris.md §4–§7, §10, §11.3)."""
from __future__ import annotations

from dataclasses import dataclass, field

from agents.common.conv import NORMS


@dataclass(frozen=True)
class TokenizerConfig:
    vocab_size: int = 512  # codebook entries N
    embed_dim: int = 512  # codebook vector size d
    z_channels: int = 512  # encoder output channels (before the 1x1 pre-quant conv)
    ch: int = 64  # base channels
    ch_mult: tuple[int, ...] = (1, 1, 1, 1, 1)  # channel multiplier per resolution level (len-1 downsamplings)
    num_res_blocks: int = 2  # res blocks per encoder level (decoder uses num_res_blocks + 1)
    attn_resolutions: tuple[int, ...] = (8, 16)  # resolutions with self-attention after each res block
    middle_blocks: bool = True  # the encoder's and decoder's middle blocks: res, attention, res (taming: on)
    mid_attention: bool = True  # self-attention in those middle blocks (taming: on; needs middle_blocks)
    resolution: int = 64  # input side in pixels
    dropout: float = 0.0  # res-block dropout
    norm: str = "group"  # normalisation layers: "group" (taming's GroupNorm) or "none" (identity)
    norm_groups: int = 32  # GroupNorm groups (taming: 32)
    beta: float = 1.0  # commitment weight
    perceptual_weight: float = 1.0  # LPIPS weight; 0 turns the perceptual term off
    squared_error_weight: float = 0.0  # weight of an added MSE reconstruction term; not in the official code (0)
    lpips_dropout_in_train: bool = True  # official quirk: LPIPS lin-layer dropout active while training (§4.3)
    weights_dir: str = ""  # LPIPS/VGG16 weights directory ("" -> $WMBENCH_WEIGHTS_DIR or ~/.cache/wmbench/weights)

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"TokenizerConfig.norm: expected one of {', '.join(NORMS)}, got {self.norm!r}")
        if self.mid_attention and not self.middle_blocks:
            raise ValueError("TokenizerConfig.mid_attention: needs middle_blocks (the attention sits between "
                             "the middle res blocks); set mid_attention false or middle_blocks true")

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
    """Same code paths at CPU scale (sanity Catch on one CPU core). Not a paper configuration.

    Small tokenizer, transformer and actor-critic over the paper's 4x4 token grid; a long random first epoch,
    then 2k-step collection epochs with many imagined updates per collected step (Δ-IRIS's `tiny` recipe).
    Deviations that are not sizes or rates: the tokenizer's loss, normalisation and middle blocks, and a
    tokenizer frozen after the first epoch, each explained next to its value (runs: benchmarks/RESULTS_iris.md).
    """
    return IrisConfig(
        # No LPIPS here (its VGG16 weights are a download). With L1 alone the VQ tokenizer's optimum was the
        # all-black frame at every grid, rate and codebook size tried: ball and paddle are 2.5% of the pixels
        # (RESULTS_iris.md). An added MSE term gives the decoder the pull towards small bright objects that LPIPS
        # gives in the paper: x16 draws every Catch cell right in 0.985 of frames after 1,000 updates (x4: 0.39
        # after 2,000 with the middle attention, 0.95 without it).
        # norm "none" and no middle blocks (taming: GroupNorm, and res-attention-res middle blocks): GroupNorm's
        # frame-wide statistics carried the paddle's position into every token's code (a one-cell move changed
        # 12% of the top row's codes), so the world model read the next paddle off a frame's earlier tokens and
        # never learned the action's effect; in imagination the paddle ignored the policy. Without them a code
        # sees only its own neighbourhood (top row: 0% changed), and the world model uses the action.
        tokenizer=TokenizerConfig(vocab_size=64, embed_dim=16, z_channels=16, ch=8, ch_mult=(1, 1, 1, 1, 1),
                                  num_res_blocks=0, attn_resolutions=(), middle_blocks=False, mid_attention=False,
                                  norm="none", perceptual_weight=0.0, squared_error_weight=16.0),
        world_model=WorldModelConfig(max_blocks=8, num_layers=2, num_heads=2, embed_dim=64),
        # H = 6 and a burn-in of 1 frame (Catch is Markov in one frame): 1 + H blocks fit the 8-block context.
        # γ 0.95 and η 0.01 as Δ-IRIS's `tiny` (~10^3 updates, not 10^5).
        actor_critic=ActorCriticConfig(channels=(8, 16, 16, 16), lstm_dim=64, horizon=6, burn_in=1, gamma=0.95,
                                       entropy_weight=0.01),
        training=TrainingConfig(
            # 4,000 random steps first (~170 episodes, ~65 caught landings for the reward head), then 8 epochs
            # of 2,000 steps (= the suite's evaluation period) and one train-only epoch: 20k steps.
            epochs=10, collection_epochs=9, steps_per_epoch=2000, first_epoch_steps=4000, first_epoch_random=True,
            # lr 3e-3: at 1e-3 no variant drew the ball within 600 updates. 2,000 updates on the random epoch
            # (every Catch frame kind is in it), then frozen (official: 200 per epoch throughout): 50 more per
            # epoch changed 34-84% of the codes over three epochs, faster than the world model relearned them.
            tokenizer=ComponentSchedule(0, 0, 16, lr=3e-3, steps_first_epoch=2000),
            # The reward head tells a catch from a miss only after ~40k segments (p(+1 | catch) 0.85 at 2,100 x 16,
            # 0.98 at 2,700): 3,000 x 16 on the random epoch (~0.2 s each) before the actor-critic starts; 100 later.
            world_model=ComponentSchedule(0, 100, 16, lr=1e-3, weight_decay=0.01, steps_first_epoch=3000),
            # From epoch 2; one update imagines 16 x 6 steps of 17 tokens: 1,350 in all.
            actor_critic=ComponentSchedule(1, 150, 16, lr=1e-3),
        ),
        require_perceptual_weights=False,
    )
