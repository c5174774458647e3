"""TWM agent: the harness contract around the world model, imagination and actor-critic (spec §8).

Schedule through `plan_epoch`: one random prefill epoch; train-only epochs for the three
pretraining phases (obs model, dynamics, actor-critic; `pretrain_updates_per_epoch` updates each
so checkpoints fall between them); then epochs of `env_steps_per_epoch` policy steps, each
followed by the training steps the official counter gives (one per `train_every` env steps).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch

from agents.base import Agent, EnvInfo, EpochPlan, Progress, register

from .actor_critic import ActorCritic
from .config import PROFILES, TWMConfig
from .flat_buffer import BalancedSampler, FlatBuffer
from .imagination import imagine
from .observation_model import mode_onehot, preprocess, sample_onehot
from .pretraining import run_pretraining
from .world_model import WorldModel

PHASES = ("prefill", "pretrain_obs", "pretrain_dyn", "pretrain_ac", "train")


@register
class TWMAgent(Agent):
    name = "twm"
    config_class = TWMConfig
    profiles = PROFILES
    observation = {"grayscale": True, "frame_stack": 4, "resize_before_pool": False, "interpolation": "area"}

    def __init__(self, config: TWMConfig, env_info: EnvInfo, device: str = "cpu", seed: int = 0):
        super().__init__(config, env_info, device, seed)
        torch.manual_seed(seed)  # module initialisation
        self.world_model = WorldModel(config, env_info.obs_shape[0], env_info.num_actions).to(device)
        self.actor_critic = ActorCritic(config, env_info.num_actions).to(device)
        self.generator = torch.Generator(device=device).manual_seed(seed)  # latent/action sampling
        self.cpu_generator = torch.Generator().manual_seed(seed + 1)  # window starts, shuffles
        self.eval_generator = torch.Generator(device=device).manual_seed(seed + 2)  # evaluation actions
        self.buffer = FlatBuffer(env_info.obs_shape)
        self.sampler = BalancedSampler(config.buffer_temperature)
        self.phase = "prefill"
        self.pretrain_consumed = 0  # elements consumed in the current pretraining phase
        self.train_counter = 0.0  # official fractional counter of env steps owed training
        self.train_steps = 0
        self.steps_seen = 0  # env steps already credited to train_counter
        self._latent_cache: torch.Tensor | None = None  # encoder log-probs of the prefill (pretraining)

    # ---- declarations ------------------------------------------------------------------------
    def train_protocol(self) -> dict[str, Any]:
        if self.env_info.family != "atari":
            return {"reward_transform": "tanh"}
        fire_game = len(self.env_info.action_meanings) > 1 and self.env_info.action_meanings[1] == "FIRE"
        # Non-FIRE games: 1..30 raw-frame no-ops inside AtariPreprocessing. FIRE games: the raw-frame
        # no-op is disabled (noop_max 0) and 1..30 full 4-frame NOOP steps follow the FIRE presses.
        return dict(noop_min=1, noop_max=30, noop_unit="step" if fire_game else "frame",
                    fire_on_reset=fire_game, fire_after_life_loss=fire_game, life_loss_terminal=True,
                    life_loss_reset_noop=True, max_frames=27_000 * 4, time_limit_scope="life",
                    reward_transform="tanh")

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {"sampler": f"visit-balanced softmax(-visits/{c.buffer_temperature})", "acting_latent": "argmax",
                "eval_temperature": c.eval_temperature, "train_every": c.train_every,
                "mixed_precision": "off (official code trains in float32)"}

    def _prefill_steps(self, budget: int) -> int:
        return min(self.config.prefill_steps, budget // 2)

    # ---- schedule ----------------------------------------------------------------------------
    def plan_epoch(self, progress: Progress) -> EpochPlan | None:
        prefill = self._prefill_steps(progress.budget_steps)
        if progress.env_steps < prefill:
            return EpochPlan(prefill - progress.env_steps, random_actions=True)
        if self.phase in ("prefill", "pretrain_obs", "pretrain_dyn", "pretrain_ac"):
            return EpochPlan(0)
        if progress.env_steps >= progress.budget_steps:
            return None
        return EpochPlan(min(self.config.env_steps_per_epoch, progress.budget_steps - progress.env_steps))

    def initial_state(self, batch_size: int) -> Any:
        return None

    @torch.no_grad()
    def act(self, obs: np.ndarray, state: Any, mode: str, first: np.ndarray) -> tuple[np.ndarray, Any]:
        om = self.world_model.obs_model.eval()
        x = preprocess(torch.as_tensor(np.asarray(obs), device=self.device))
        z = mode_onehot(om.encode(x)).flatten(-2)
        evaluate = mode == "evaluate"
        temperature = self.config.eval_temperature if evaluate else 1.0
        actions = self.actor_critic.act(z, self.eval_generator if evaluate else self.generator, temperature)
        return actions.cpu().numpy().astype(np.int64), None

    # ---- learning ----------------------------------------------------------------------------
    def update(self, replay: Any, progress: Progress) -> dict[str, float]:
        self.buffer.sync(replay)
        if self.phase == "prefill":
            if progress.env_steps < self._prefill_steps(progress.budget_steps):
                return {}
            self.phase, self.steps_seen = "pretrain_obs", progress.env_steps
        sums: dict[str, Any] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)

        def record(metrics: dict[str, torch.Tensor]) -> None:
            for key, value in metrics.items():  # summed on the device; one host transfer per key at the end
                sums[key] = sums[key] + value.detach()
                counts[key] += 1

        if self.phase != "train":
            run_pretraining(self, record)
        else:
            self.train_counter += progress.env_steps - self.steps_seen
            self.steps_seen = progress.env_steps
            while self.train_counter >= self.config.train_every:
                self.train_counter -= self.config.train_every
                record(self.train_step())
        out = {key: float(sums[key]) / counts[key] for key in sums}
        out.update({"train_steps": float(self.train_steps), "buffer_size": float(self.buffer.size)})
        return out

    def train_step(self) -> dict[str, torch.Tensor]:
        """One world-model update on balanced windows, then one actor-critic update on imagination."""
        c = self.config
        starts = self.sampler.sample(self.buffer.size, c.wm_batch_size, c.wm_sequence_length, self.cpu_generator)
        w = self._tensors(self.buffer.window(starts, c.wm_sequence_length))
        z, metrics = self.world_model.update(w["obs"], w["actions"], w["rewards"], w["terminated"],
                                             w["truncated"], self.generator)
        ends = w["terminated"] | w["truncated"]
        candidates = z.shape[0] * (z.shape[1] - 1)
        pick = torch.randperm(candidates, generator=self.cpu_generator)[: c.ac_batch_size].to(self.device)
        flat = lambda x: x[:, :-1].reshape(candidates, *x.shape[2:])[pick]  # noqa: E731
        z_next = z[:, 1:].reshape(candidates, -1)[pick]
        trajectories = imagine(self.world_model.dyn_model, self.actor_critic, flat(z), flat(w["actions"]),
                               flat(w["rewards"]), flat(ends), z_next, c.ac_horizon, self.generator,
                               self._fresh_latents)
        metrics.update(self.actor_critic.update(trajectories.z, trajectories.actions, trajectories.rewards,
                                                trajectories.discounts, trajectories.ends, trajectories.weights))
        metrics["imagined_end_rate"] = trajectories.ends.float().mean()
        self.train_steps += 1
        return metrics

    @torch.no_grad()
    def _fresh_latents(self, count: int) -> torch.Tensor:
        """Latents of uniformly random buffer observations, sampled at temperature 1."""
        index = torch.randint(0, self.buffer.size + 1, (count,), generator=self.cpu_generator).numpy()
        om = self.world_model.obs_model.eval()
        log_probs = om.encode(preprocess(torch.as_tensor(self.buffer.obs(index), device=self.device)))
        return sample_onehot(log_probs, self.generator).flatten(-2)

    def _tensors(self, window: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        out = {key: torch.as_tensor(value, device=self.device) for key, value in window.items()}
        if "obs" in out:
            out["obs"] = preprocess(out["obs"])
        return out

    # ---- checkpointing -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        wm, ac = self.world_model, self.actor_critic
        return {
            "obs_model": wm.obs_model.state_dict(), "dyn_model": wm.dyn_model.state_dict(),
            "obs_optimizer": wm.obs_optimizer.state_dict(), "dyn_optimizer": wm.dyn_optimizer.state_dict(),
            "actor": ac.actor.state_dict(), "critic": ac.critic.state_dict(),
            "actor_optimizer": ac.actor_optimizer.state_dict(), "critic_optimizer": ac.critic_optimizer.state_dict(),
            "sampler": self.sampler.state_dict(), "phase": self.phase, "pretrain_consumed": self.pretrain_consumed,
            "train_counter": self.train_counter, "train_steps": self.train_steps, "steps_seen": self.steps_seen,
            "generator": self.generator.get_state(), "cpu_generator": self.cpu_generator.get_state(),
            "eval_generator": self.eval_generator.get_state(),
            # dropout draws from torch's global generators, which cannot be given a Generator
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = {"obs_model", "dyn_model", "actor", "critic", "phase", "generator"} - set(state)
        if missing:
            raise KeyError(f"TWM checkpoint: missing keys {sorted(missing)}")
        wm, ac = self.world_model, self.actor_critic
        wm.obs_model.load_state_dict(state["obs_model"])
        wm.dyn_model.load_state_dict(state["dyn_model"])
        wm.obs_optimizer.load_state_dict(state["obs_optimizer"])
        wm.dyn_optimizer.load_state_dict(state["dyn_optimizer"])
        ac.actor.load_state_dict(state["actor"])
        ac.critic.load_state_dict(state["critic"])
        ac.actor_optimizer.load_state_dict(state["actor_optimizer"])
        ac.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.sampler.load_state_dict(state["sampler"])
        self.phase, self.pretrain_consumed = state["phase"], int(state["pretrain_consumed"])
        self.train_counter, self.train_steps = float(state["train_counter"]), int(state["train_steps"])
        self.steps_seen = int(state["steps_seen"])
        self.generator.set_state(state["generator"])
        self.cpu_generator.set_state(state["cpu_generator"])
        self.eval_generator.set_state(state["eval_generator"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.buffer = FlatBuffer(self.env_info.obs_shape)  # rebuilt from the replay at the next update()
        self._latent_cache = None
