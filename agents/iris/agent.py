"""IRIS agent: the harness contract around tokenizer, world model and actor-critic (spec iris.md)."""
from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from agents.base import Agent, EnvInfo, EpochPlan, Mode, Progress, RequiredFile, register
from agents.common import lpips as lpips_lib
from agents.common.actor_critic import IrisConvTrunk, RecurrentActorCritic
from agents.common.optim import adamw_linear_decay
from agents.iris import batches
from agents.iris.config import IrisConfig, atari100k, crafter, tiny
from agents.iris.imagination import WorldModelEnv
from agents.iris.schedule import Schedule, build_schedule
from agents.iris.tokenizer import Tokenizer
from agents.iris.training import actor_critic_step, to_frames, tokenizer_step, world_model_step
from agents.iris.world_model import WorldModel

FREEWAY = "Freeway"


@dataclass
class ActState:
    """Per-env recurrent state for act(): LSTM state, recent frames for re-burn-in, policy version."""

    h: torch.Tensor  # [B, lstm]
    c: torch.Tensor  # [B, lstm]
    history: np.ndarray  # [B, burn_in, C, H, W] uint8, most recent last
    history_len: np.ndarray  # [B] frames of the ongoing episode held in history
    version: int  # policy version the LSTM state was computed with


@register
class IrisAgent(Agent):
    name = "iris"
    config_class = IrisConfig
    profiles = {"atari100k": atari100k, "crafter": crafter, "tiny": tiny}
    observation: dict[str, Any] = {}  # 64x64 RGB, no frame stack

    def __init__(self, config: IrisConfig, env_info: EnvInfo, device: str = "cpu", seed: int = 0):
        super().__init__(config, env_info, device, seed)
        if tuple(env_info.obs_shape) != (3, config.tokenizer.resolution, config.tokenizer.resolution):
            raise ValueError(f"IRIS: expected observations of shape (3, {config.tokenizer.resolution}, "
                             f"{config.tokenizer.resolution}), env gives {env_info.obs_shape}")
        self.torch_device = torch.device(device)
        if self.torch_device.type == "cuda" and config.tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.weights_dir = lpips_lib.weights_dir(config.tokenizer.weights_dir)
        self.missing_weights = lpips_lib.missing_files(self.weights_dir) if config.tokenizer.perceptual_weight > 0 else []
        perceptual = None
        if config.tokenizer.perceptual_weight > 0 and not self.missing_weights:
            perceptual = lpips_lib.LPIPS.from_directory(self.weights_dir)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.tokenizer = Tokenizer(config.tokenizer, perceptual).to(self.torch_device)
            self.world_model = WorldModel(config.world_model, config.tokenizer.vocab_size,
                                          config.tokenizer.tokens_per_frame, env_info.num_actions).to(self.torch_device)
            trunk = IrisConvTrunk(3, config.actor_critic.channels, config.tokenizer.resolution)
            self.actor_critic = RecurrentActorCritic(trunk, trunk.output_dim, env_info.num_actions,
                                                     config.actor_critic.lstm_dim).to(self.torch_device)
        training = config.training
        self.optimizers = {
            "tokenizer": torch.optim.Adam(self.tokenizer.trainable_parameters(), lr=training.tokenizer.lr),
            "world_model": adamw_linear_decay(self.world_model, training.world_model.lr,
                                              training.world_model.weight_decay),
            "actor_critic": torch.optim.Adam(self.actor_critic.parameters(), lr=training.actor_critic.lr),
        }
        self._rng = np.random.default_rng(seed)
        self._act_generator = torch.Generator(self.torch_device).manual_seed(seed + 1)
        self.epochs_done = 0
        self.policy_version = 0
        self.updates_done = {"tokenizer": 0, "world_model": 0, "actor_critic": 0}

    # ---- declarations -------------------------------------------------------------------
    @property
    def perceptual_on(self) -> bool:
        return self.tokenizer.lpips is not None and self.config.tokenizer.perceptual_weight > 0

    @property
    def collect_temperature(self) -> float:
        cfg = self.config.actor_critic
        return cfg.freeway_collect_temperature if self.env_info.name == FREEWAY else cfg.collect_temperature

    def resets_envs_together(self) -> bool:
        return True  # official collector: MultiProcessEnv(..., should_wait_num_envs_ratio=1.0)

    def required_files(self) -> list[RequiredFile]:
        if self.config.tokenizer.perceptual_weight <= 0:
            return []
        how = lpips_lib.how_to_get(self.weights_dir)
        return [RequiredFile("torchvision VGG16 ImageNet weights (LPIPS backbone)",
                             self.weights_dir / lpips_lib.VGG_FILE, how),
                RequiredFile("LPIPS v0.1 VGG linear heads", self.weights_dir / lpips_lib.LPIPS_FILE, how)]

    def describe(self) -> dict[str, Any]:
        return {
            "perceptual_loss": "on" if self.perceptual_on else "off",
            "squared_error_weight": self.config.tokenizer.squared_error_weight,  # 0 = the official L1 (+ LPIPS) loss
            # the official tokenizer: GroupNorm, middle blocks with attention
            "tokenizer_norm": self.config.tokenizer.norm,
            "middle_blocks": self.config.tokenizer.middle_blocks,
            "mid_attention": self.config.tokenizer.mid_attention,
            "lpips_weights_dir": str(self.weights_dir),
            "collect_temperature": self.collect_temperature,
            "freeway_temperature_exception": self.env_info.name == FREEWAY,
            "eval_temperature": self.config.actor_critic.eval_temperature,
            "collect_epsilon": self.config.actor_critic.collect_epsilon,
            "parameters": {name: sum(p.numel() for p in params) for name, params in (
                ("tokenizer", self.tokenizer.trainable_parameters()), ("world_model", self.world_model.parameters()),
                ("actor_critic", self.actor_critic.parameters()))},
            "deviations": ["LSTM state carried by the harness between act() calls; re-burnt-in over the last "
                           "burn_in frames of each ongoing episode whenever the policy changed (IRIS re-burns "
                           "at every collection call, which only differs when the policy did not change)"],
        }

    def schedule(self, budget_steps: int) -> Schedule:
        return build_schedule(self.config.training, budget_steps)

    # ---- epochs ----------------------------------------------------------------------------
    def plan_epoch(self, progress: Progress) -> EpochPlan | None:
        if self.missing_weights and self.config.require_perceptual_weights:
            raise FileNotFoundError(f"IRIS: perceptual-loss weights missing ({', '.join(map(str, self.missing_weights))}); "
                                    f"{lpips_lib.how_to_get(self.weights_dir)}")
        schedule = self.schedule(progress.budget_steps)
        epoch = self.epochs_done + 1
        if epoch > schedule.total_epochs:
            return None
        steps = schedule.collect_steps(epoch, self.config.training, progress.env_steps, progress.budget_steps)
        return EpochPlan(collect_steps=steps, random_actions=self.config.training.first_epoch_random and epoch == 1)

    def update(self, replay: Any, progress: Progress) -> dict[str, float]:
        schedule = self.schedule(progress.budget_steps)
        epoch = self.epochs_done + 1
        training, device = self.config.training, self.torch_device
        sums: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), device=device))
        counts: dict[str, int] = defaultdict(int)

        def record(metrics: dict[str, torch.Tensor]) -> None:
            for key, value in metrics.items():
                sums[key] = sums[key] + value.float()
                counts[key] += 1

        devices = [self.torch_device.index or 0] if self.torch_device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(self._rng.integers(2**62)))
            for _ in range(schedule.updates("tokenizer", epoch, training.tokenizer)):
                frames = to_frames(batches.sample_frames(replay, self._rng, training.tokenizer.batch_size), device)
                record(tokenizer_step(self.tokenizer, self.optimizers["tokenizer"], frames,
                                      training.tokenizer.max_grad_norm))
                self.updates_done["tokenizer"] += 1
            length = self.config.world_model.max_blocks
            for _ in range(schedule.updates("world_model", epoch, training.world_model)):
                batch = batches.sample_world_model_segments(replay, self._rng, training.world_model.batch_size, length)
                record(world_model_step(self.world_model, self.tokenizer, self.optimizers["world_model"], batch,
                                        device, training.world_model.max_grad_norm))
                self.updates_done["world_model"] += 1
            ac_updates = schedule.updates("actor_critic", epoch, training.actor_critic)
            wm_env = WorldModelEnv(self.tokenizer, self.world_model)
            for _ in range(ac_updates):
                batch = batches.sample_actor_critic_segments(replay, self._rng, training.actor_critic.batch_size,
                                                             self.config.actor_critic.burn_in + 1)
                record(actor_critic_step(self.actor_critic, wm_env, self.optimizers["actor_critic"], batch,
                                         self.config.actor_critic, device, training.actor_critic.max_grad_norm))
                self.updates_done["actor_critic"] += 1
        self.epochs_done += 1
        if ac_updates:
            self.policy_version += 1
        metrics = {key: float(total.item()) / counts[key] for key, total in sums.items()}
        metrics.update({f"updates/{k}": float(v) for k, v in self.updates_done.items()})
        metrics["epoch"] = float(self.epochs_done)
        metrics["imagination/cache_refreshes"] = float(wm_env.cache_refreshes)
        return metrics

    # ---- acting -------------------------------------------------------------------------------
    def initial_state(self, batch_size: int) -> ActState:
        h, c = self.actor_critic.initial_state(batch_size, self.torch_device)
        shape = (batch_size, self.config.actor_critic.burn_in, *self.env_info.obs_shape)
        return ActState(h, c, np.zeros(shape, np.uint8), np.zeros(batch_size, np.int64), self.policy_version)

    @torch.no_grad()
    def _reburn(self, state: ActState) -> None:
        """Recomputes the LSTM state from zero over each env's recent frames with the current policy."""
        b, burn = len(state.history_len), state.history.shape[1]
        h, c = self.actor_critic.initial_state(b, self.torch_device)
        if burn and state.history_len.any():
            frames = to_frames(state.history, self.torch_device)
            recon = self.tokenizer.reconstruct(frames.flatten(0, 1)).view(frames.shape)
            mask = torch.from_numpy(np.arange(burn)[None, :] >= burn - state.history_len[:, None]).to(self.torch_device)
            h, c = self.actor_critic.burn_in(recon, mask, (h, c))
        state.h, state.c, state.version = h, c, self.policy_version

    @torch.no_grad()
    def act(self, obs: np.ndarray, state: ActState | None, mode: Mode, first: np.ndarray) -> tuple[np.ndarray, ActState]:
        batch = len(obs)
        if state is None:
            state = self.initial_state(batch)
        first = np.asarray(first, dtype=bool)
        if first.any():
            state.history_len[first] = 0
            state.history[first] = 0
        if state.version != self.policy_version:
            self._reburn(state)
        elif first.any():
            keep = torch.from_numpy(~first).to(self.torch_device).unsqueeze(1)
            state.h, state.c = state.h * keep, state.c * keep
        self.tokenizer.eval()
        self.actor_critic.eval()
        recon = self.tokenizer.reconstruct(to_frames(obs, self.torch_device))
        logits, _, (state.h, state.c) = self.actor_critic.step(recon, (state.h, state.c))
        cfg = self.config.actor_critic
        temperature = cfg.eval_temperature if mode == "evaluate" else self.collect_temperature
        probs = (logits / temperature).softmax(-1)
        actions = torch.multinomial(probs, 1, generator=self._act_generator).squeeze(1).cpu().numpy()
        if mode == "collect" and cfg.collect_epsilon > 0:
            explore = self._rng.random(batch) < cfg.collect_epsilon
            actions = np.where(explore, self._rng.integers(0, self.env_info.num_actions, batch), actions)
        if state.history.shape[1]:
            state.history = np.roll(state.history, -1, axis=1)
            state.history[:, -1] = obs
            state.history_len = np.minimum(state.history_len + 1, state.history.shape[1])
        return actions.astype(np.int64), state

    # ---- checkpointing --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "tokenizer": self.tokenizer.state_dict(), "world_model": self.world_model.state_dict(),
            "actor_critic": self.actor_critic.state_dict(),
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "epochs_done": self.epochs_done, "policy_version": self.policy_version,
            "updates_done": dict(self.updates_done), "rng": self._rng.bit_generator.state,
            "act_generator": self._act_generator.get_state(), "config": dataclasses.asdict(self.config),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tokenizer.load_state_dict(state["tokenizer"])
        self.world_model.load_state_dict(state["world_model"])
        self.actor_critic.load_state_dict(state["actor_critic"])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        self.epochs_done = int(state["epochs_done"])
        self.policy_version = int(state["policy_version"])
        self.updates_done = dict(state["updates_done"])
        self._rng.bit_generator.state = state["rng"]
        self._act_generator.set_state(state["act_generator"])
