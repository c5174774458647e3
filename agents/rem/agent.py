"""The REM agent: tokenizer V, POP-RetNet world model M, latent actor-critic C on the 600-epoch schedule."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from agents.base import Agent, EnvInfo, EpochPlan, Mode, Progress, RequiredFile, register
from agents.common import lpips
from agents.common.optim import adamw_linear_decay, clip_and_step
from agents.rem.config import PROFILES, RemConfig, validate
from agents.rem.controller import LatentActorCritic, actor_critic_loss, imagine
from agents.rem.sampler import PositionSampler, frames_batch, segments_batch
from agents.rem.tokenizer import Tokenizer
from agents.rem.world_model import POPWorldModel

SEGMENT_CTX = 2  # sample positions keep >= 3 real blocks (world model) / frames (controller), spec §3


@dataclass(frozen=True)
class Schedule:
    """Epoch counts for a budget: the reference schedule scaled by collect_epochs / reference."""

    collect_epochs: int
    total_epochs: int
    tokenizer_start: int
    world_model_start: int
    controller_start: int


def make_schedule(config: RemConfig, budget_steps: int) -> Schedule:
    collect = max(1, math.ceil(budget_steps / config.steps_per_epoch))
    scale = collect / config.collect_epochs
    return Schedule(collect, collect + round((config.total_epochs - config.collect_epochs) * scale),
                    round(config.tokenizer.start_after_epoch * scale),
                    round(config.world_model.start_after_epoch * scale),
                    round(config.controller.start_after_epoch * scale))


@register
class RemAgent(Agent):
    name = "rem"
    config_class = RemConfig
    profiles = PROFILES
    observation: dict[str, Any] = {}  # 64x64 RGB, no frame stack

    def __init__(self, config: RemConfig, env_info: EnvInfo, device: str = "cpu", seed: int = 0):
        super().__init__(validate(config), env_info, device, seed)
        if tuple(env_info.obs_shape) != (3, 64, 64):
            raise ValueError(f"rem: expects observations (3, 64, 64), env {env_info.name} gives {env_info.obs_shape}")
        torch.manual_seed(seed)  # parameter init
        self.tokenizer = Tokenizer(config.tokenizer).to(device)
        self.world_model = POPWorldModel(config.world_model, env_info.num_actions, config.tokenizer.vocab_size,
                                         self.tokenizer.tokens_per_frame).to(device)
        self.controller = LatentActorCritic(config.controller, config.tokenizer.embed_dim, self.tokenizer.grid,
                                            env_info.num_actions).to(device)
        tc, wc, cc = config.tokenizer, config.world_model, config.controller
        self.tokenizer_opt = torch.optim.AdamW(self.tokenizer.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        self.world_model_opt = adamw_linear_decay(self.world_model, wc.lr, wc.weight_decay)
        self.controller_opt = torch.optim.AdamW(self.controller.parameters(), lr=cc.lr, weight_decay=cc.weight_decay)
        self.np_rng = np.random.default_rng(seed)
        self.act_generator = torch.Generator().manual_seed(seed)
        self.epochs_trained = 0
        self._perceptual: torch.nn.Module | None = None

    # ---- declarations -------------------------------------------------------------------------
    def train_protocol(self) -> dict[str, Any]:
        return {}  # the harness's Atari training defaults are REM's (spec §2)

    def resets_envs_together(self) -> bool:
        return True  # official collector: MultiProcessEnv(..., should_wait_num_envs_ratio=1.0)

    def _weights_dir(self):
        return lpips.weights_dir(self.config.tokenizer.weights_dir)

    def required_files(self) -> list[RequiredFile]:
        if self.config.tokenizer.perceptual_weight <= 0:
            return []
        directory = self._weights_dir()
        return [RequiredFile("LPIPS-VGG16 weights for the tokenizer's perceptual loss", directory / name,
                             lpips.how_to_get(directory)) for name in (lpips.VGG_FILE, lpips.LPIPS_FILE)]

    @property
    def collect_temperature(self) -> float:
        cc = self.config.controller
        return cc.freeway_collect_temperature if self.env_info.name == "Freeway" else cc.collect_temperature

    def describe(self) -> dict[str, Any]:
        cc = self.config.controller
        count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
        return {"perceptual_loss": "on" if self.config.tokenizer.perceptual_weight > 0 else "off",
                "from_paper": self.config.from_paper, "collect_temperature": self.collect_temperature,
                "eval_temperature": cc.eval_temperature, "epsilon": cc.epsilon,
                "tokens_per_frame": self.tokenizer.tokens_per_frame,
                "tokenizer_norm": self.config.tokenizer.norm,
                "tokenizer_inner_kernel": self.config.tokenizer.inner_kernel,
                "parameters": {"tokenizer": count(self.tokenizer), "world_model": count(self.world_model),
                               "controller": count(self.controller)},
                "deviations": ["no observation-only re-burn-in of C at the start of each collection epoch: the "
                               "harness carries C's LSTM state across epochs instead (spec §7.4)"]}

    # ---- acting ---------------------------------------------------------------------------------
    def initial_state(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.controller.initial_state(batch_size, self.device)

    @torch.no_grad()
    def act(self, obs: np.ndarray, state: Any, mode: Mode, first: np.ndarray) -> tuple[np.ndarray, Any]:
        cc = self.config.controller
        self.tokenizer.eval()
        self.controller.eval()
        keep = torch.as_tensor(~np.asarray(first, bool), device=self.device)[:, None].float()
        state = (state[0] * keep, state[1] * keep)
        frames = torch.as_tensor(obs, device=self.device).float().div_(255)
        grid = self.tokenizer.code_grid(self.tokenizer.tokenize(frames))
        logits, _, state = self.controller.observe(grid, state)
        temperature = cc.eval_temperature if mode == "evaluate" else self.collect_temperature
        probs = torch.softmax(logits.float().cpu() / temperature, dim=-1)
        actions = torch.multinomial(probs, 1, generator=self.act_generator)[:, 0]
        state = self.controller.act_step(actions.to(self.device), state)
        executed = actions.numpy().astype(np.int64)
        if mode == "collect" and cc.epsilon > 0:
            # The LSTM has been fed the sampled action even where it is replaced (spec D11).
            explore = self.np_rng.random(len(executed)) < cc.epsilon
            executed = np.where(explore, self.np_rng.integers(0, self.env_info.num_actions, len(executed)), executed)
        return executed, state

    # ---- learning -------------------------------------------------------------------------------
    def plan_epoch(self, progress: Progress) -> EpochPlan | None:
        schedule = make_schedule(self.config, progress.budget_steps)
        if progress.epoch >= schedule.total_epochs:
            return None
        remaining = max(0, progress.budget_steps - progress.env_steps)
        return EpochPlan(collect_steps=min(self.config.steps_per_epoch, remaining), random_actions=False)

    def update(self, replay, progress: Progress) -> dict[str, float]:
        schedule = make_schedule(self.config, progress.budget_steps)
        epoch = progress.epoch + 1
        seed = int(self.np_rng.integers(2 ** 62))
        devices = [torch.device(self.device).index or 0] if str(self.device).startswith("cuda") else []
        metrics: dict[str, torch.Tensor] = {}
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)  # dropout and imagination sampling draw from the agent's RNG
            stop = self.config.tokenizer.stop_after_epoch
            if epoch > schedule.tokenizer_start and not (stop and epoch > stop):
                metrics.update(self.train_tokenizer(replay))
            if epoch > schedule.world_model_start:
                metrics.update(self.train_world_model(replay))
            if epoch > schedule.controller_start:
                metrics.update(self.train_controller(replay))
        self.epochs_trained = epoch
        return {key: float(value) for key, value in metrics.items()}

    def _perceptual_module(self) -> torch.nn.Module | None:
        if self.config.tokenizer.perceptual_weight <= 0:
            return None
        if self._perceptual is None:
            self._perceptual = lpips.LPIPS.from_directory(self._weights_dir()).to(self.device)
        return self._perceptual.train()  # the official trainer leaves LPIPS dropout active (spec §4.2)

    def train_tokenizer(self, replay) -> dict[str, torch.Tensor]:
        tc = self.config.tokenizer
        sampler = PositionSampler(replay, 0, self.np_rng)
        if len(sampler) == 0:
            return {}
        perceptual = self._perceptual_module()
        self.tokenizer.train()
        totals: dict[str, torch.Tensor] = {}
        for _ in range(tc.updates_per_epoch):
            frames = frames_batch(replay, sampler.draw(tc.batch_size), self.device)
            loss, metrics = self.tokenizer.loss(frames, perceptual)
            self.tokenizer_opt.zero_grad(set_to_none=True)
            loss.backward()
            clip_and_step(self.tokenizer_opt, self.tokenizer.parameters(), tc.grad_clip)
            _accumulate(totals, metrics, tc.updates_per_epoch)
        return totals

    def world_model_batch(self, replay, sampler: PositionSampler, batch_size: int) -> dict[str, torch.Tensor]:
        wc = self.config.world_model
        batch = segments_batch(replay, sampler.draw(batch_size), wc.segment_blocks, 0, self.device)
        self.tokenizer.eval()
        batch["tokens"] = self.tokenizer.tokenize(batch.pop("frames"))
        return batch

    def train_world_model(self, replay) -> dict[str, torch.Tensor]:
        wc = self.config.world_model
        sampler = PositionSampler(replay, SEGMENT_CTX, self.np_rng)
        if len(sampler) == 0:
            return {}
        totals: dict[str, torch.Tensor] = {}
        for _ in range(wc.updates_per_epoch):
            batch = self.world_model_batch(replay, sampler, wc.batch_size)
            self.world_model.train()
            loss, metrics = self.world_model.loss(batch["tokens"], batch["actions"], batch["rewards"], batch["ends"],
                                                  batch["valid"], self.tokenizer.codebook)
            self.world_model_opt.zero_grad(set_to_none=True)
            loss.backward()
            clip_and_step(self.world_model_opt, self.world_model.parameters(), wc.grad_clip)
            _accumulate(totals, metrics, wc.updates_per_epoch)
        return totals

    def train_controller(self, replay) -> dict[str, torch.Tensor]:
        cc = self.config.controller
        sampler = PositionSampler(replay, SEGMENT_CTX, self.np_rng)
        if len(sampler) == 0:
            return {}
        self.tokenizer.eval()
        self.world_model.eval()
        self.controller.train()
        length = 1 + cc.burn_in
        totals: dict[str, torch.Tensor] = {}
        for _ in range(cc.updates_per_epoch):
            batch = segments_batch(replay, sampler.draw(cc.batch_size), length, SEGMENT_CTX + 1 - length, self.device)
            tokens = self.tokenizer.tokenize(batch["frames"])
            rollout = imagine(self.tokenizer, self.world_model, self.controller, cc,
                              self.config.world_model.context_blocks, tokens, batch["actions"], batch["valid"])
            loss, metrics = actor_critic_loss(rollout, cc)
            self.controller_opt.zero_grad(set_to_none=True)
            loss.backward()
            clip_and_step(self.controller_opt, self.controller.parameters(), cc.grad_clip)
            _accumulate(totals, metrics, cc.updates_per_epoch)
        return totals

    # ---- checkpointing ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer.state_dict(), "world_model": self.world_model.state_dict(),
                "controller": self.controller.state_dict(), "tokenizer_opt": self.tokenizer_opt.state_dict(),
                "world_model_opt": self.world_model_opt.state_dict(),
                "controller_opt": self.controller_opt.state_dict(), "np_rng": self.np_rng.bit_generator.state,
                "act_generator": self.act_generator.get_state(), "epochs_trained": self.epochs_trained}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("tokenizer", "world_model", "controller", "tokenizer_opt", "world_model_opt", "controller_opt"):
            getattr(self, name).load_state_dict(state[name])
        self.np_rng.bit_generator.state = state["np_rng"]
        self.act_generator.set_state(state["act_generator"])
        self.epochs_trained = int(state["epochs_trained"])


def _accumulate(totals: dict[str, torch.Tensor], metrics: dict[str, torch.Tensor], count: int) -> None:
    for key, value in metrics.items():
        totals[key] = totals.get(key, 0.0) + value / count
