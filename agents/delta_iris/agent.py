"""Δ-IRIS agent: the harness contract (agents/base.py) around tokenizer, world model and actor-critic."""
from __future__ import annotations

import contextlib
from collections import defaultdict
from typing import Any

import numpy as np
import torch

from agents.base import Agent, EnvInfo, EpochPlan, Mode, Progress, register
from agents.common.optim import adamw_linear_decay, clip_and_step
from agents.delta_iris.actor_critic import ActorCritic
from agents.delta_iris.config import PROFILES, DeltaIrisConfig
from agents.delta_iris.imagination import Imagination
from agents.delta_iris.sampler import COMPONENTS, CountBasedSampler, load_batch
from agents.delta_iris.schedule import EpochSchedule
from agents.delta_iris.tokenizer import Tokenizer
from agents.delta_iris.world_model import WorldModel
from harness.replay import Replay


@register
class DeltaIrisAgent(Agent):
    name = "delta_iris"
    config_class = DeltaIrisConfig
    profiles = PROFILES
    observation: dict[str, Any] = {}  # 64x64 RGB
    num_collect_envs_default = 16

    def __init__(self, config: DeltaIrisConfig, env_info: EnvInfo, device: str = "cpu", seed: int = 0):
        super().__init__(config, env_info, device, seed)
        if tuple(env_info.obs_shape) != (3, 64, 64):
            raise ValueError(f"delta_iris expects 3x64x64 RGB observations, env {env_info.name} gives {env_info.obs_shape}")
        ac, blocks = config.actor_critic, config.world_model.max_blocks
        if ac.burn_in + ac.horizon + 1 > blocks:
            # Otherwise imagination's cache reset sets in, and the next steps predict Δ-tokens from the context's
            # last block, whose Δ-token head a segment of max_blocks frames never trains (it has no next frame).
            raise ValueError(f"delta_iris config: actor_critic.burn_in + actor_critic.horizon + 1 = "
                             f"{ac.burn_in + ac.horizon + 1} must be <= world_model.max_blocks = {blocks}")
        self.torch_device = torch.device(device)
        if self.torch_device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True  # as the official trainer (one process per cell)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            a = env_info.num_actions
            self.tokenizer = Tokenizer(config.tokenizer, a).to(device)
            self.world_model = WorldModel(config.world_model, a, config.tokenizer.codebook_size,
                                          config.tokenizer.num_tokens).to(device)
            self.actor_critic = ActorCritic(config.actor_critic, a).to(device)
        if config.channels_last:  # a memory layout, not a model change (CPU mkldnn conv backward ~4x faster)
            for module in (self.tokenizer, self.world_model, self.actor_critic):
                module.to(memory_format=torch.channels_last)
        lr = config.learning_rate
        self.optimizers = {
            "tokenizer": adamw_linear_decay(self.tokenizer, lr, config.train_tokenizer.weight_decay),
            "world_model": adamw_linear_decay(self.world_model, lr, config.train_world_model.weight_decay),
            "actor_critic": torch.optim.Adam(self.actor_critic.model.parameters(), lr=lr),
        }
        self.sampler = CountBasedSampler(seed)
        self.generators = {name: torch.Generator(device=self.torch_device).manual_seed(seed * 1000 + i)
                           for i, name in enumerate(("train", "collect", "evaluate"))}
        self.revival_generator = torch.Generator().manual_seed(seed * 1000 + 7)  # dead-code revival (CPU)
        self.epochs_done = 0
        self.collect_burn_in: np.ndarray | None = None  # last burn_in frames of each ongoing episode
        self._schedule: EpochSchedule | None = None

    # ---- declarations ------------------------------------------------------------------------
    def modules(self) -> dict[str, torch.nn.Module]:
        return {"tokenizer": self.tokenizer, "world_model": self.world_model, "actor_critic": self.actor_critic}

    def resets_envs_together(self) -> bool:
        return True  # official collector: MultiProcessEnv(..., should_wait_num_envs_ratio=1.0)

    def describe(self) -> dict[str, Any]:
        counts = {name: sum(p.numel() for p in m.parameters() if p.requires_grad) for name, m in self.modules().items()}
        cuda = self.torch_device.type == "cuda"
        return {"perceptual_loss": "off (Δ-IRIS has none)", "eval_temperature": self.config.eval_temperature,
                "collect_epsilon": self.config.collect_epsilon, "parameters": counts,
                "mixed_precision": "bf16 autocast for tokenizer and world model" if cuda else "fp32 (CPU)"}

    def schedule(self, budget_steps: int) -> EpochSchedule:
        if self._schedule is None or self._schedule.budget_steps != budget_steps:
            self._schedule = EpochSchedule.for_budget(self.config, budget_steps)
        return self._schedule

    def plan_epoch(self, progress: Progress) -> EpochPlan | None:
        return self.schedule(progress.budget_steps).plan(self.epochs_done, progress.env_steps)

    # ---- acting ------------------------------------------------------------------------------
    def initial_state(self, batch_size: int) -> dict[str, Any]:
        zeros = torch.zeros(batch_size, self.config.actor_critic.lstm_dim)
        return {"hx": zeros, "cx": zeros.clone(), "version": None}

    @torch.no_grad()
    def act(self, obs: np.ndarray, state: Any, mode: Mode, first: np.ndarray) -> tuple[np.ndarray, Any]:
        model, device = self.actor_critic.model, self.torch_device
        batch = len(obs)
        state = state if state is not None else self.initial_state(batch)
        hx, cx = state["hx"].to(device), state["cx"].to(device)
        if state["version"] != self.epochs_done:
            # Weights changed (or a fresh state): reset and burn in on the last burn_in frames of each
            # ongoing episode (collection) or on zero frames (evaluation start), as the official collector.
            frames = np.zeros((batch, self.config.actor_critic.burn_in, *obs.shape[1:]), np.uint8)
            if mode == "collect" and self.collect_burn_in is not None and len(self.collect_burn_in) == batch:
                frames = self.collect_burn_in
            hx, cx = model.burn_in(torch.from_numpy(frames).to(device).float().div(255), model.initial_state(batch))
        elif first.any():
            keep = torch.from_numpy(~np.asarray(first, bool)).to(device).unsqueeze(1)
            hx, cx = hx * keep, cx * keep
        logits, _, (hx, cx) = model(torch.from_numpy(np.asarray(obs)).to(device).float().div(255), (hx, cx))
        generator = self.generators[mode]
        temperature = self.config.collect_temperature if mode == "collect" else self.config.eval_temperature
        actions = torch.multinomial((logits / temperature).softmax(-1), 1, generator=generator)[:, 0]
        if mode == "collect" and self.config.collect_epsilon > 0:
            explore = torch.rand(batch, device=device, generator=generator) < self.config.collect_epsilon
            uniform = torch.randint(0, logits.shape[-1], (batch,), device=device, generator=generator)
            actions = torch.where(explore, uniform, actions)
        return actions.cpu().numpy().astype(np.int64), {"hx": hx, "cx": cx, "version": self.epochs_done}

    # ---- learning ----------------------------------------------------------------------------
    def _autocast(self, enabled: bool) -> contextlib.AbstractContextManager:
        if enabled and self.torch_device.type == "cuda":  # bf16 only where the official code uses it, on CUDA
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def update(self, replay: Replay, progress: Progress) -> dict[str, float]:
        schedule = self.schedule(progress.budget_steps)
        epoch = self.epochs_done + 1
        metrics: dict[str, float] = {}
        for name in COMPONENTS:
            train = getattr(self.config, f"train_{name}")
            if not schedule.trains(name, epoch):
                continue
            steps = schedule.updates(name, epoch, train.steps_first_epoch, train.steps_per_epoch)
            metrics |= self.train_component(name, replay, steps, update_counts=epoch > 1)
        self.epochs_done += 1
        self.collect_burn_in = self._ongoing_burn_in_frames(replay)
        return metrics

    def train_component(self, name: str, replay: Replay, steps: int, update_counts: bool) -> dict[str, float]:
        """`steps` optimisation steps of one component on count-based samples of the replay."""
        train = getattr(self.config, f"train_{name}")
        module, optimizer = self.modules()[name], self.optimizers[name]
        for other in self.modules().values():
            other.train(other is module)
        sums: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), device=self.torch_device))
        for _ in range(steps):
            episodes, starts = self.sampler.sample(name, replay, train.batch_size, train.sequence_length,
                                                   train.priority_alpha, beyond_end=name != "actor_critic")
            batch = load_batch(replay, episodes, starts, train.sequence_length, self.torch_device,
                               self.config.truncation_is_end)
            with self._autocast(train.mixed_precision):
                loss, step_metrics = self.component_loss(name, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = clip_and_step(optimizer, module.parameters(), train.max_grad_norm)
            if update_counts:
                self.sampler.increment(name, episodes)
            for key, value in (step_metrics | {"loss_total": loss.detach(), "grad_norm": grad_norm}).items():
                sums[key] = sums[key] + torch.as_tensor(value, device=self.torch_device, dtype=torch.float32)
        module.eval()
        return {f"{name}/{key}": float(value) / steps for key, value in sums.items()}

    def component_loss(self, name: str, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        if name == "tokenizer":
            return self.tokenizer.compute_loss(batch.obs, batch.actions, batch.mask, self.revival_generator)
        if name == "world_model":
            with torch.no_grad():
                tokens = self.tokenizer.encode(batch.obs[:, :-1], batch.actions[:, :-1], batch.obs[:, 1:]).tokens
            return self.world_model.compute_loss(batch.obs, batch.actions, batch.rewards, batch.ends, tokens,
                                                 batch.step_mask)
        imagination = Imagination(self.tokenizer, self.world_model, self.generators["train"])
        return self.actor_critic.compute_loss(batch.obs, batch.actions, imagination, self.generators["train"])

    def _ongoing_burn_in_frames(self, replay: Replay) -> np.ndarray:
        """[num_envs, burn_in, C, H, W]: the stored frames before each env's current observation, left zero-padded."""
        length = self.config.actor_critic.burn_in
        frames = np.zeros((replay.num_envs, length, *replay.obs_shape), np.uint8)
        lengths = replay.episode_lengths()
        for env in range(replay.num_envs):
            episode = replay.ongoing_episode(env)
            if episode is not None:
                frames[env] = replay.segment(episode, int(lengths[episode]) - length, length).obs
        return frames

    # ---- checkpointing -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "models": {name: m.state_dict() for name, m in self.modules().items()},
            "optimizers": {name: o.state_dict() for name, o in self.optimizers.items()},
            "sampler": self.sampler.state_dict(),
            "generators": {name: g.get_state() for name, g in self.generators.items()},
            "revival_generator": self.revival_generator.get_state(),
            "epochs_done": self.epochs_done,
            "collect_burn_in": None if self.collect_burn_in is None else self.collect_burn_in.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, module in self.modules().items():
            module.load_state_dict(state["models"][name])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        self.sampler.load_state_dict(state["sampler"])
        for name, generator in self.generators.items():
            generator.set_state(state["generators"][name])
        self.revival_generator.set_state(state["revival_generator"])
        self.epochs_done = int(state["epochs_done"])
        self.collect_burn_in = state["collect_burn_in"]
