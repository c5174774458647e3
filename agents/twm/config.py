"""TWM configuration: one typed dataclass, the official `CONFIGS['default']` values (spec §8.1).

Profiles: `atari100k` (the official defaults), `crafter` (adapted, NOT from the paper) and `tiny`
(same code paths, small widths/depths/batches for CPU tests).
"""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class TWMConfig:
    # ---- replay / schedule (spec §3, §8) ------------------------------------------------------
    prefill_steps: int = 5_000  # uniform-random steps before pretraining (capped at half the budget)
    buffer_temperature: float = 20.0  # τ of the visit-balanced sampler softmax(-visits/τ)
    train_every: float = 0.76  # env steps per training step: 95,000 / 125,000 (spec §8.3)
    env_steps_per_epoch: int = 1  # env steps collected per harness epoch (official: 1, act/train interleaved)
    pretrain_obs_frames: int = 30_000_000  # 0.6 × 5e7 frames consumed by obs-model pretraining
    pretrain_obs_chunk: int = 1_600  # frames per obs-pretraining update (last chunk of a pass is smaller)
    pretrain_dyn_elements: int = 15_000_000  # 0.3 × 5e7 window steps consumed by dynamics pretraining
    pretrain_ac_elements: int = 35_000_000  # 0.7 × 5e7 (official "1 - 0.6 + 0.3", spec T6) AC pretraining
    pretrain_updates_per_epoch: int = 1_000  # pretraining updates per update() call (checkpoint granularity)

    # ---- latents / observation model (spec §4) ------------------------------------------------
    z_categoricals: int = 32  # independent categorical variables
    z_categories: int = 32  # classes per categorical
    obs_channels: int = 48  # encoder base channels (48, 96, 192, 384; decoder 768, 192, 96, 48)
    obs_mlp_dim: int = 512  # encoder MLP hidden width (two hidden layers)
    obs_lr: float = 1e-4  # Adam learning rate
    obs_eps: float = 1e-5  # Adam epsilon
    obs_wd: float = 1e-6  # L2 weight decay (Adam, not AdamW)
    obs_grad_clip: float = 100.0  # global grad-norm clip
    obs_entropy_coef: float = 5.0  # weight of the entropy hinge
    obs_entropy_threshold: float = 0.1  # normalised-entropy floor of the hinge
    obs_consistency_coef: float = 0.01  # encoder half of the encoder/dynamics cross-entropy
    obs_decoder_coef: float = 1.0  # weight of the Gaussian reconstruction NLL

    # ---- dynamics model (spec §5) -------------------------------------------------------------
    dyn_embed_dim: int = 256  # Transformer width
    dyn_num_heads: int = 4  # attention heads
    dyn_head_dim: int = 64  # per-head width
    dyn_num_layers: int = 10  # Transformer-XL layers
    dyn_feedforward_dim: int = 1024  # FFN hidden width
    dyn_dropout: float = 0.1  # attention, FFN, positional encodings and head MLPs
    dyn_z_dims: tuple[int, ...] = (512, 512, 512, 512)  # next-latent head hidden widths
    dyn_reward_dims: tuple[int, ...] = (256, 256, 256, 256)  # reward head hidden widths
    dyn_discount_dims: tuple[int, ...] = (256, 256, 256, 256)  # discount head hidden widths
    dyn_lr: float = 1e-4  # Adam learning rate
    dyn_eps: float = 1e-5  # Adam epsilon
    dyn_wd: float = 1e-6  # L2 weight decay
    dyn_grad_clip: float = 100.0  # global grad-norm clip
    dyn_z_coef: float = 1.0  # next-latent cross-entropy weight
    dyn_reward_coef: float = 10.0  # reward NLL weight
    dyn_discount_coef: float = 50.0  # discount BCE weight

    # ---- world-model batches (spec §3, §8.1) --------------------------------------------------
    wm_batch_size: int = 100  # windows per world-model update
    wm_sequence_length: int = 16  # steps per window (plus one context step and one next frame)
    wm_memory_length: int = 16  # steps of Transformer-XL memory (50 tokens) and attention window (17 steps)
    wm_discount_threshold: float = 0.1  # imagined end when the cumulative predicted discount drops below

    # ---- actor-critic (spec §7) ---------------------------------------------------------------
    ac_batch_size: int = 400  # imagined trajectories per update
    ac_horizon: int = 15  # imagined steps per trajectory
    ac_dims: tuple[int, ...] = (512, 512, 512, 512)  # hidden widths of actor and critic MLPs
    actor_lr: float = 1e-4  # Adam learning rate
    critic_lr: float = 1e-5  # Adam learning rate
    ac_eps: float = 1e-5  # Adam epsilon (both)
    ac_wd: float = 1e-6  # L2 weight decay (both)
    ac_grad_clip: float = 1.0  # grad-norm clip (both)
    actor_entropy_coef: float = 0.01  # weight of the actor entropy hinge
    actor_entropy_threshold: float = 0.1  # normalised-entropy floor
    gamma: float = 0.99  # discount target of non-terminal steps
    lam: float = 0.95  # GAE λ
    eval_temperature: float = 1.0  # policy temperature in evaluation (official: stochastic, T=1)

    def __post_init__(self) -> None:
        if self.dyn_num_heads * self.dyn_head_dim != self.dyn_embed_dim:
            raise ValueError(f"TWMConfig: dyn_num_heads*dyn_head_dim ({self.dyn_num_heads}*{self.dyn_head_dim}) "
                             f"must equal dyn_embed_dim ({self.dyn_embed_dim})")
        if self.train_every <= 0:
            raise ValueError(f"TWMConfig: train_every must be > 0, got {self.train_every}")
        if self.env_steps_per_epoch < 1:
            raise ValueError(f"TWMConfig: env_steps_per_epoch must be >= 1, got {self.env_steps_per_epoch}")

    @property
    def z_dim(self) -> int:
        return self.z_categoricals * self.z_categories

    @property
    def memory_tokens(self) -> int:
        """Tokens cached per layer in imagination: 3 per step of memory plus (z, a) of the current step."""
        return 3 * self.wm_memory_length + 2

    @property
    def max_distance(self) -> int:
        """Relative positions needed: memory plus one new (r, z, a) step (53 for the defaults)."""
        return self.memory_tokens + 3


def atari100k() -> TWMConfig:
    return TWMConfig()


def crafter() -> TWMConfig:
    # NOT from the paper: TWM has no Crafter configuration. The official Atari values, with a
    # 10,000-step prefill (2x) so pretraining sees several of Crafter's long, varied episodes. The
    # observation is the agent's declared grayscale 4-frame stack (TWM.observation is class-wide).
    return replace(TWMConfig(), prefill_steps=10_000)


def tiny() -> TWMConfig:
    # Same code paths, CPU-sized: small widths/depths/batches, short pretraining, faster rates so the
    # Catch sanity run (20k agent steps) fits ~25 min on a shared 2-core CPU (≈0.35-0.45 s per
    # training step there). Tuned on Catch, see benchmarks/RESULTS_twm.md (sanity section).
    return TWMConfig(
        prefill_steps=1_000,  # 1000 random steps (~43 episodes): enough paddle/ball variety for pretraining
        # NOT official (0.76): ~3,800 training steps in 20k env steps fit ~17 min of a core; 9.0 learned
        # less (final -0.72 / -1.44 against +0.02 / +0.26 at 5.0, RESULTS_twm.md)
        train_every=5.0,
        env_steps_per_epoch=16,  # one metrics line per 16 env steps (~3 training steps)
        pretrain_obs_frames=1_000 * 64,  # 64 passes / 2,000 updates: the paddle (gray, bottom edge) is slow to encode
        pretrain_obs_chunk=32,  # smaller chunks than official 1,600: more updates per frame seen
        pretrain_dyn_elements=1_000 * 40,  # cheap (cached latents, no convolutions): ~40 passes
        pretrain_ac_elements=400 * 10, pretrain_updates_per_epoch=100,
        z_categoricals=16, z_categories=16, obs_channels=8, obs_mlp_dim=128,
        obs_lr=2e-3,  # 20x official: few updates; 5e-3 collapsed the latent entropy and lost the ball
        dyn_lr=5e-4,  # 5x official: few updates
        dyn_embed_dim=64, dyn_num_heads=2, dyn_head_dim=32, dyn_num_layers=2, dyn_feedforward_dim=128,
        dyn_z_dims=(128, 128), dyn_reward_dims=(64, 64), dyn_discount_dims=(64, 64),
        wm_batch_size=6, wm_sequence_length=8, wm_memory_length=8,
        ac_batch_size=48,  # all 6x8 window steps start an imagined trajectory
        ac_horizon=10,  # >= 8: every imagined trajectory sees a landing (one ball falls for 8 steps)
        ac_dims=(128, 128),
        actor_lr=1e-4, critic_lr=3e-4,  # critic 30x official so values follow the few updates
        actor_entropy_threshold=0.4,  # floor 0.4 (official 0.1): keeps exploring until the reward head can
        # tell a catch from a miss (earlier runs collapsed to ~0.2 on uninformative advantages)
    )


PROFILES = {"atari100k": atari100k, "crafter": crafter, "tiny": tiny}
