"""How faithful is an IRIS, Δ-IRIS or REM run's imagination? Imagined rollouts against the real env, same actions.

From B real start states (random play of a random length) of the env the run recorded in run.json, the
run's latest checkpoint imagines H steps, while the real envs take the same actions: uniformly random ones,
or (`--actions policy`) the run's own actor-critic, burned in on the real prefix and acting on the imagined
frames as in training (REM's C reads the imagined tokens' code grids, as in its training). Per imagination step it prints the fraction of pixels the imagined frame gets wrong
(|difference| > 0.5 in any channel) and the mean imagined reward where the real reward is 0, -1 and +1; then
the mean H-step reward sum, imagined and real. New objects the env draws at random (a new Catch ball) are
wrong by chance, so step 1 is not exactly 0 even for a perfect model. An imagined sum well above the real one
under the policy's actions is the policy exploiting the world model.

    python benchmarks/imagination_fidelity.py runs/sanity/delta_iris/catch/seed_0 [--actions policy]
    python benchmarks/imagination_fidelity.py runs/sanity/iris/catch/seed_0 [--actions policy]
    python benchmarks/imagination_fidelity.py runs/sanity/rem/catch/seed_1 [--actions policy]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.delta_iris.imagination import Imagination, sample_categorical  # noqa: E402
from agents.iris.imagination import WorldModelEnv  # noqa: E402
from agents.iris.training import burn_in_on_reconstructions  # noqa: E402
from agents.rem.controller import PopSimulator  # noqa: E402
from harness.envs import make_env  # noqa: E402
from harness.envs import protocol as protocols  # noqa: E402
from harness.loop import build_agent  # noqa: E402
from harness.suite import RunSpec  # noqa: E402


def start_states(env_protocol, batch: int, context: int, rng: np.random.Generator):
    """Envs after a random-length random prefix; their last `context` + 1 frames and `context` actions."""
    envs, frames, actions = [], [], []
    for i in range(batch):
        env = make_env(env_protocol, seed=10_000 + i)
        ended = True
        while ended:  # redraw a prefix that ended the episode (rare: prefixes are shorter than an episode)
            obs, _ = env.reset()
            history, taken, ended = [obs], [], False
            for _ in range(int(rng.integers(context, context + 16))):
                action = int(rng.integers(env.action_space.n))
                obs, _, terminated, truncated, _ = env.step(action)
                history.append(obs)
                taken.append(action)
                ended = terminated or truncated
                if ended:
                    break
        envs.append(env)
        frames.append(np.stack(history[-context - 1:]))
        actions.append(taken[len(taken) - context:])
    return envs, torch.tensor(np.stack(frames)).float() / 255, torch.tensor(actions).reshape(batch, context)


class DeltaIrisRollout:
    """Δ-IRIS: the world model is primed with the whole real prefix; the policy burns in on its frames."""

    def __init__(self, agent, generator: torch.Generator):
        self.burn_in, self.horizon = agent.config.actor_critic.burn_in, agent.config.actor_critic.horizon
        self.imagination = Imagination(agent.tokenizer, agent.world_model, generator)
        self.policy, self.state = agent.actor_critic.model, None

    def reset(self, frames: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        self.state = self.policy.burn_in(frames[:, :-1], self.policy.initial_state(frames.size(0)))
        return self.imagination.reset(frames, actions)

    def policy_logits(self, frame: torch.Tensor) -> torch.Tensor:
        logits, _, self.state = self.policy(frame, self.state)
        return logits

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frame, reward, _ = self.imagination.step(actions)
        return frame, reward


class IrisRollout:
    """IRIS (as its training does): the policy burns in on the reconstructed prefix; the world model starts
    from the last real frame alone."""

    def __init__(self, agent, generator: torch.Generator):
        self.burn_in, self.horizon = agent.config.actor_critic.burn_in, agent.config.actor_critic.horizon
        self.policy, self.state = agent.actor_critic, None
        self.env = WorldModelEnv(agent.tokenizer, agent.world_model, generator)

    def reset(self, frames: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        prefix = frames[:, :-1]
        valid = torch.ones(prefix.shape[:2], dtype=torch.bool)
        self.state = burn_in_on_reconstructions(self.policy, self.env.tokenizer, prefix, valid)
        return self.env.reset(frames[:, -1])

    def policy_logits(self, frame: torch.Tensor) -> torch.Tensor:
        logits, _, self.state = self.policy.step(frame, self.state)
        return logits

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        reward, _, frame = self.env.step(actions)
        return frame, reward


class RemRollout:
    """REM (as its training does): M is primed with the last two real frames, C burns in on the code grids of
    the frames before the last; each step is one POP decision with tokens sampled at the imagine token temperature.
    The horizon is the number of predicted frames: imagine_horizon - context_blocks."""

    def __init__(self, agent, generator: torch.Generator):
        cc = agent.config.controller
        self.burn_in, self.horizon = cc.burn_in, cc.imagine_horizon - agent.config.world_model.context_blocks
        self.tokenizer, self.world_model, self.controller = agent.tokenizer, agent.world_model, agent.controller
        self.temperature, self.generator = cc.imagine_token_temperature, generator
        self.simulator, self.tokens, self.state, self.observed = None, None, None, False

    def reset(self, frames: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        tokens = self.tokenizer.tokenize(frames)
        grids = self.tokenizer.code_grid(tokens[:, :-1])
        valid = torch.ones(grids.shape[:2], dtype=torch.bool)
        self.state = self.controller.burn_in(grids, valid, self.controller.initial_state(len(frames), "cpu"))
        self.simulator = PopSimulator(self.world_model, self.tokenizer.codebook, tokens[:, -2:], actions[:, -1],
                                      self.generator)
        self.tokens = tokens[:, -1]
        return self.tokenizer.decode(self.tokens)

    def policy_logits(self, frame: torch.Tensor) -> torch.Tensor:
        """C's logits on the current imagined tokens (`frame` is their decoding)."""
        logits, _, self.state = self.controller.observe(self.tokenizer.code_grid(self.tokens), self.state)
        self.observed = True
        return logits

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.observed:  # C alternates observation and action steps
            self.state, self.observed = self.controller.act_step(actions, self.state), False
        reward, _, self.tokens = self.simulator.step(actions, self.temperature)
        return self.tokenizer.decode(self.tokens), reward


ROLLOUTS = {"delta_iris": DeltaIrisRollout, "iris": IrisRollout, "rem": RemRollout}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="an IRIS, Δ-IRIS or REM run folder with checkpoints/ and run.json")
    parser.add_argument("--batch", type=int, default=64, help="imagined rollouts")
    parser.add_argument("--seed", type=int, default=0, help="seed of the start states, actions and token samples")
    parser.add_argument("--actions", choices=("random", "policy"), default="random",
                        help="who chooses the actions: uniformly random, or the run's actor-critic on imagined frames")
    args = parser.parse_args()
    torch.set_num_threads(1)
    run = json.loads((args.run_dir / "run.json").read_text())
    spec = RunSpec.from_dict(run["spec"])
    if spec.agent not in ROLLOUTS:
        raise SystemExit(f"{args.run_dir}/run.json: agent {spec.agent!r} has no imagination here; "
                         f"expected one of {sorted(ROLLOUTS)}")
    agent = build_agent(spec, "cpu")[0]
    train_protocol = protocols.from_dict(run["train_protocol"])  # the env as the run recorded it
    checkpoints = sorted((args.run_dir / "checkpoints").glob("ckpt_*.pt"))
    if not checkpoints:
        raise SystemExit(f"{args.run_dir}/checkpoints: no ckpt_*.pt to load")
    agent.load_state_dict(torch.load(checkpoints[-1], weights_only=False)["agent"])
    for module in vars(agent).values():
        if isinstance(module, torch.nn.Module):
            module.eval()
    rollout = ROLLOUTS[spec.agent](agent, torch.Generator().manual_seed(args.seed))
    rng = np.random.default_rng(args.seed)
    envs, frames, actions = start_states(train_protocol, args.batch, rollout.burn_in, rng)
    policy_generator = torch.Generator().manual_seed(args.seed)
    print(f"{checkpoints[-1]}: {args.batch} rollouts of H = {rollout.horizon}, actions: {args.actions}")
    print("step  wrong pixels  imagined reward where real = 0 / -1 / +1 (count)")
    with torch.no_grad():
        frame = rollout.reset(frames, actions)
        alive = np.ones(args.batch, bool)
        imagined_sum, real_sum = np.zeros(args.batch), np.zeros(args.batch)
        for step in range(1, rollout.horizon + 1):
            if args.actions == "policy":
                chosen = sample_categorical(rollout.policy_logits(frame), policy_generator).numpy()
            else:
                chosen = rng.integers(envs[0].action_space.n, size=args.batch)
            frame, reward = rollout.step(torch.from_numpy(chosen))
            real_frames, real_rewards = np.zeros((args.batch, *frames.shape[2:]), np.float32), np.zeros(args.batch)
            live = alive.copy()  # rows whose real episode has not ended: the only ones compared
            for i, env in enumerate(envs):
                if alive[i]:
                    obs, real_rewards[i], terminated, truncated, _ = env.step(int(chosen[i]))
                    real_frames[i] = obs / 255
                    alive[i] = not (terminated or truncated)
            imagined_sum += reward.numpy() * live
            real_sum += real_rewards * live
            wrong = (frame - torch.from_numpy(real_frames)).abs().amax(1).gt(0.5).float().mean((1, 2)).numpy()[live]
            columns = []
            for value in (0.0, -1.0, 1.0):
                chosen_rows = live & (real_rewards == value)
                mean = float(reward.numpy()[chosen_rows].mean()) if chosen_rows.any() else float("nan")
                columns.append(f"{mean:+.2f} ({int(chosen_rows.sum())})")
            print(f"{step:4d}  {wrong.mean():12.4f}  {' / '.join(columns)}")
    print(f"H-step reward sum: imagined {imagined_sum.mean():+.3f}, real {real_sum.mean():+.3f}")


if __name__ == "__main__":
    main()
