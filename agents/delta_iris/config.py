"""Δ-IRIS configuration: one typed dataclass tree, with the `crafter`, `atari100k` and `tiny` profiles.

Values follow the official code (vmicheli/delta-iris, config/params/{crafter,atari}.yaml); see
/work/shared/specs/delta_iris.md. Deliberate deviations are commented next to the value.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FrameCnnConfig:
    """FrameEncoder / FrameDecoder shape: one residual block per level (spec §4.1)."""

    channels: int  # base width c; level i has mult[i] * c channels
    latent_dim: int  # channels of the 8x8 latent map (encoder output / decoder input)
    mult: tuple[int, ...] = (1, 1, 2, 2, 4)  # width multipliers per level
    down: tuple[int, ...] = (1, 0, 1, 1, 0)  # 1 where a level is followed by a 2x down/upsampling


@dataclass
class TokenizerConfig:
    """Context-aware autoencoder: E(x_{t-1}, a_{t-1}, x_t) -> K Δ-tokens; D(x_{t-1}, a_{t-1}, z_t) -> x_t."""

    num_tokens: int = 4  # K Δ-tokens per frame (a sqrt(K) x sqrt(K) grid of latent patches)
    codebook_size: int = 1024  # N codes
    codebook_dim: int = 64  # factorised (projected, L2-normalised) code dimension
    decoder_action_channels: int = 4  # learned per-action latent-resolution map fed to the decoder
    encoder: FrameCnnConfig = field(default_factory=lambda: FrameCnnConfig(64, 64))  # on [x_{t-1}, action plane, x_t]
    decoder: FrameCnnConfig = field(default_factory=lambda: FrameCnnConfig(64, 0))  # latent_dim derived (76/84)
    frame_embedder: FrameCnnConfig = field(default_factory=lambda: FrameCnnConfig(64, 8))  # x_{t-1} for the decoder
    max_codebook_updates_with_revival: int = 0  # R: revival allowed in the first R updates (Crafter 0, Atari 400)
    dead_code_revival: bool = True  # official: revival as gated above (also whenever usage < 1 bit); tiny: off
    commitment_weight: float = 0.02  # commitment loss weight
    l1_weight: float = 0.1  # reconstruction mean |δ|
    l2_weight: float = 1.0  # reconstruction mean δ²
    max_pixel_weight: float = 0.01  # mean over images of max δ²
    codebook_ema: float = 0.99  # codebook <- ema * codebook + (1 - ema) * batch mean
    usage_ema: float = 0.98  # code-usage frequency EMA

    @property
    def decoder_input_channels(self) -> int:
        return self.frame_embedder.latent_dim + self.decoder_action_channels + self.encoder.latent_dim


@dataclass
class WorldModelConfig:
    """Causal transformer over blocks [I-token, action, z^1..z^K] (spec §5)."""

    max_blocks: int = 21  # context in timesteps (= world-model sequence length)
    num_layers: int = 3  # transformer layers
    num_heads: int = 8  # attention heads
    embed_dim: int = 512  # width E (= I-token size: 8*8*itoken latent_dim)
    itoken_cnn: FrameCnnConfig = field(default_factory=lambda: FrameCnnConfig(32, 8))  # I-token frame CNN
    two_hot_rewards: bool = True  # Crafter: 255-bin two-hot symlog rewards; Atari: 3 sign classes
    latents_weight: float = 1.0  # Δ-token CE weight (Atari 0.1)
    rewards_weight: float = 1.0  # reward CE weight
    ends_weight: float = 1.0  # termination CE weight (Atari 0.1)


@dataclass
class ActorCriticConfig:
    """CNN + LSTM actor-critic trained in imagination with an EMA target critic (spec §6)."""

    cnn: FrameCnnConfig = field(default_factory=lambda: FrameCnnConfig(32, 16))  # trunk -> 16x8x8 = 1024
    lstm_dim: int = 512  # LSTMCell hidden size
    two_hot_values: bool = True  # Crafter: 255-bin two-hot critic; Atari: scalar MSE critic
    burn_in: int = 5  # frames fed (no grad) before the imagination start frame
    horizon: int = 15  # imagination horizon H
    gamma: float = 0.997  # discount
    lambda_: float = 0.95  # λ of the λ-returns
    entropy_weight: float = 0.001  # η
    target_ema: float = 0.995  # θ̄ <- ema θ̄ + (1 - ema) θ after every step


@dataclass
class ComponentSchedule:
    """How one component (tokenizer, world model, actor-critic) is trained each epoch."""

    batch_size: int  # segments per batch
    sequence_length: int  # frames per segment
    steps_per_epoch: int  # optimisation steps per epoch
    steps_first_epoch: int  # steps in epoch 1 (only matters when start_after_epochs == 0)
    start_after_epochs: int  # first trained in epoch start_after_epochs + 1 (paper budget)
    weight_decay: float  # AdamW decay on Linear weights only (actor-critic: Adam, 0)
    priority_alpha: float  # count-based sampling exponent α: p_e ∝ (1 / (1 + n_e))^α
    max_grad_norm: float = 10.0  # gradient clipping
    mixed_precision: bool = True  # bf16 autocast (CUDA only; CPU runs fp32)


@dataclass
class DeltaIrisConfig:
    """Everything a Δ-IRIS run needs."""

    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    actor_critic: ActorCriticConfig = field(default_factory=ActorCriticConfig)
    train_tokenizer: ComponentSchedule = field(default_factory=lambda: ComponentSchedule(32, 21, 500, 5000, 0, 0.01, 5.0))
    train_world_model: ComponentSchedule = field(default_factory=lambda: ComponentSchedule(32, 21, 500, 2500, 0, 0.01, 5.0))
    train_actor_critic: ComponentSchedule = field(
        default_factory=lambda: ComponentSchedule(86, 6, 500, 500, 0, 0.0, 5.0, mixed_precision=False))
    learning_rate: float = 1e-4  # all components, constant
    num_collect_envs: int = 16  # parallel collection envs
    random_steps_first_epoch: int = 100_000  # epoch 1: uniformly random actions
    steps_per_epoch: int = 10_000  # agent steps collected per later epoch (summed over envs)
    paper_budget_steps: int = 10_000_000  # budget the epoch counts below belong to
    train_only_epochs: int = 9  # epochs after the last collection at the paper budget (1000 - 991)
    collect_epsilon: float = 0.01  # collection: uniform random action with this probability
    collect_temperature: float = 1.0  # collection sampling temperature
    eval_temperature: float = 1.0  # evaluation sampling temperature (official code: 1.0; IRIS used 0.5)
    truncation_is_end: bool = True  # official code stores time-limit ends as end=1 for the termination head
    channels_last: bool = False  # store conv weights channels-last (memory layout only; same math). tiny: True


def crafter() -> DeltaIrisConfig:
    """The paper's main setting (config/params/crafter.yaml): 10M frames, 1000 epochs."""
    return DeltaIrisConfig()


def atari100k() -> DeltaIrisConfig:
    """The released Atari config (config/params/atari.yaml), which differs from Crafter in many places."""
    return DeltaIrisConfig(
        tokenizer=TokenizerConfig(frame_embedder=FrameCnnConfig(32, 16), max_codebook_updates_with_revival=400),
        world_model=WorldModelConfig(max_blocks=26, num_heads=4, embed_dim=256, itoken_cnn=FrameCnnConfig(32, 4),
                                     two_hot_rewards=False, latents_weight=0.1, ends_weight=0.1),
        actor_critic=ActorCriticConfig(two_hot_values=False, horizon=20, gamma=0.995, entropy_weight=0.002),
        train_tokenizer=ComponentSchedule(16, 21, 200, 400, 5, 0.0, 1.0),
        train_world_model=ComponentSchedule(64, 26, 120, 120, 50, 0.01, 1.0),
        train_actor_critic=ComponentSchedule(64, 6, 200, 200, 75, 0.0, 1.0, mixed_precision=False),
        num_collect_envs=1,
        random_steps_first_epoch=2_000,
        steps_per_epoch=200,
        paper_budget_steps=100_000,
        train_only_epochs=109,  # 600 - 491
    )


def tiny() -> DeltaIrisConfig:
    """Same code paths at CPU scale (sanity Catch, on a shared CPU core). Not a paper configuration.

    Every CNN has three levels of width 4 (64 -> 32 -> 16 -> 8) instead of five of width 32/64; small
    transformer and batches; lr 1e-3; a long random first epoch (the data the reward head needs), then
    2k-step collection epochs with many imagined updates per collected step.
    """
    def cnn(latent_dim: int) -> FrameCnnConfig:
        return FrameCnnConfig(4, latent_dim, mult=(1, 1, 1), down=(1, 1, 1))

    return DeltaIrisConfig(
        # Revival off: Catch is near-deterministic (only the new ball's column is random), so usage falls
        # below 1 bit, the official revival fires and re-seeded codes turned the Δ-tokens into noise.
        tokenizer=TokenizerConfig(codebook_size=64, codebook_dim=16, encoder=cnn(16), decoder=cnn(0),
                                  frame_embedder=cnn(4), dead_code_revival=False),
        # I-token 2x8x8 = 128 (E): with one channel (E = 64) the paddle column was linearly decodable from
        # the I-token in only 34% of frames (ball column 100%), with two channels in 99%. Context of 8 blocks
        # = burn-in 1 + H 6 + 1, as the paper's 5 + 15 + 1 = 21: imagination never resets its cache, which
        # would make it predict Δ-tokens from the last block, untrained (RESULTS_delta_iris.md).
        # Sign-class rewards, as the Atari profile (Catch pays +-1 like a clipped Atari reward): on 4k random
        # steps the reward head told catches from misses after ~22k segments; two-hot had not after 30k
        # (RESULTS_delta_iris.md, fourth and fifth sessions).
        world_model=WorldModelConfig(max_blocks=8, num_layers=2, num_heads=4, embed_dim=128, itoken_cnn=cnn(2),
                                     two_hot_rewards=False),
        # H = 6 and a burn-in of 1 frame (Catch is Markov in one frame) fit the 8-block context; faster target
        # EMA for ~10^3 updates instead of 10^5.
        actor_critic=ActorCriticConfig(cnn=cnn(16), lstm_dim=64, burn_in=1, horizon=6, gamma=0.95,
                                       entropy_weight=0.01, target_ema=0.98),
        # The decoder draws the falling ball (an 8x8 white cell) at ~0.5 brightness after 400 updates and ~0.8-0.9
        # after 1,200-2,000. Imagination decodes each frame from the previous imagined one, so a dim ball fades
        # out within H and the actor-critic learns to make misses vanish: 1,500 on the random epoch, 50 after.
        train_tokenizer=ComponentSchedule(4, 6, 50, 1500, 0, 0.01, 1.0),
        # The catch/miss relation is learned per segment seen, not per update: 1,200 updates of 24 segments
        # (~29k) on the random epoch, so the reward head tells catches from misses before the actor-critic
        # starts; then 100 per collection epoch.
        train_world_model=ComponentSchedule(24, 8, 100, 1200, 0, 0.01, 1.0),
        # Starts in epoch 2; batch 8 keeps an update under a second here. On a fixed world model the real
        # return kept rising up to the 2,700th update (the last measured), so 300 per epoch: 2,700 in all.
        train_actor_critic=ComponentSchedule(8, 2, 300, 0, 1, 0.0, 1.0, mixed_precision=False),
        learning_rate=1e-3,
        num_collect_envs=1,
        random_steps_first_epoch=4_000,  # ~170 random episodes: ~65 caught landings for the reward head
        steps_per_epoch=2_000,  # = the suite's evaluation period
        paper_budget_steps=20_000,  # the sanity budget: 1 random + 8 collection epochs, then 1 train-only
        train_only_epochs=1,
        channels_last=True,  # CPU: mkldnn conv backward at width 4 is ~4x faster channels-last
    )


PROFILES = {"crafter": crafter, "atari100k": atari100k, "tiny": tiny}
