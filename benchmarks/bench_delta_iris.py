"""Δ-IRIS speed at a paper profile: one update of each component and one imagination rollout.

    python benchmarks/bench_delta_iris.py --profile crafter            # cuda if available, else cpu
    python benchmarks/bench_delta_iris.py --profile atari100k --batch-scale 0.125 --repeats 2   # small CPU run

Times (median over --repeats after one warm-up) one optimisation step of the tokenizer, the world
model and the actor-critic (whose step includes its imagination) at the profile's batch sizes, and
one no-grad imagination rollout (burn-in + horizon H, policy sampling included) reported as
imagined frames per second. On CUDA the tokenizer and world model updates run under bf16 autocast as
in the official code; the actor-critic update and its imagination run in fp32, as there. Projects the hours of a full run from the official update totals (collection and
evaluation time excluded) and prints a markdown row; --out appends the figures as one JSON line.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.base import EnvInfo, apply_overrides  # noqa: E402
from agents.delta_iris import DeltaIrisAgent  # noqa: E402
from agents.delta_iris.config import PROFILES  # noqa: E402
from agents.delta_iris.imagination import Imagination, sample_categorical  # noqa: E402
from agents.delta_iris.sampler import load_batch  # noqa: E402
from agents.delta_iris.schedule import EpochSchedule  # noqa: E402
from harness.replay import Replay  # noqa: E402

ENVS = {"crafter": EnvInfo("crafter", "crafter", 17, (3, 64, 64)), "atari100k": EnvInfo("atari", "Breakout", 4, (3, 64, 64))}
PUBLISHED = {"crafter": "10M frames: 7 days (workshop version, A100); ~8.7 days on an H200 (third-party rerun)",
             "atari100k": "26 h per run on an A100 (paper App. C)"}


def synthetic_replay(episodes: int, length: int, num_actions: int) -> Replay:
    rng = np.random.default_rng(0)
    replay = Replay((3, 64, 64), 1)
    for _ in range(episodes):
        replay.start_episode(0, rng.integers(0, 256, (3, 64, 64), dtype=np.uint8))
        for t in range(length):
            replay.add_step(0, int(rng.integers(num_actions)), float(rng.choice([0.0, 1.0])), t == length - 1, False,
                            rng.integers(0, 256, (3, 64, 64), dtype=np.uint8))
    return replay


def timed(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.no_grad()
def imagination_rollout(agent: DeltaIrisAgent, replay: Replay) -> None:
    cfg = agent.config
    train = cfg.train_actor_critic
    episodes, starts = agent.sampler.sample("actor_critic", replay, train.batch_size, train.sequence_length,
                                            train.priority_alpha, beyond_end=False)
    batch = load_batch(replay, episodes, starts, train.sequence_length, agent.torch_device, True)
    model = agent.actor_critic.model
    imagination = Imagination(agent.tokenizer.eval(), agent.world_model.eval(), agent.generators["train"])
    state = model.burn_in(batch.obs[:, :-1], model.initial_state(len(episodes)))
    frame = imagination.reset(batch.obs, batch.actions[:, :-1])  # fp32, as in the official actor-critic update
    for _ in range(cfg.actor_critic.horizon):
        logits, _, state = model(frame, state)
        frame, _, _ = imagination.step(sample_categorical(logits, agent.generators["train"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(set(PROFILES) - {"tiny"}), default="crafter")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-scale", type=float, default=1.0, help="multiply every batch size (CPU runs)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, help="append the figures as a JSON line to this file")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # as the official trainer
        torch.backends.cudnn.allow_tf32 = True
    config = PROFILES[args.profile]()
    sizes = {}
    for name in ("tokenizer", "world_model", "actor_critic"):
        full = getattr(config, f"train_{name}").batch_size
        sizes[f"train_{name}.batch_size"] = max(1, round(full * args.batch_scale))
    config = apply_overrides(config, sizes, where="--batch-scale")
    env = ENVS[args.profile]
    agent = DeltaIrisAgent(config, env, device=args.device, seed=0)
    replay = synthetic_replay(8, 200, env.num_actions)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = {name: timed(lambda n=name: agent.train_component(n, replay, 1, update_counts=True), device, args.repeats)
               for name in ("tokenizer", "world_model", "actor_critic")}
    rollout = timed(lambda: imagination_rollout(agent, replay), device, args.repeats)
    batch, horizon = config.train_actor_critic.batch_size, config.actor_critic.horizon
    schedule = EpochSchedule.for_budget(config, config.paper_budget_steps)
    totals = {name: sum(schedule.updates(name, e, getattr(config, f"train_{name}").steps_first_epoch,
                                         getattr(config, f"train_{name}").steps_per_epoch)
                        for e in range(1, schedule.total_epochs + 1) if schedule.trains(name, e))
              for name in seconds}
    hours = sum(totals[n] * seconds[n] for n in seconds) / 3600
    result = {
        "agent": "delta_iris", "profile": args.profile, "device": torch.cuda.get_device_name(device)
        if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)", "batch_scale": args.batch_scale,
        "batch_sizes": {k.split(".")[0][6:]: v for k, v in sizes.items()},
        "seconds_per_update": seconds, "imagination_seconds": rollout,
        "imagined_frames_per_second": batch * horizon / rollout, "imagination_batch": batch, "horizon": horizon,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "projected_training_hours": hours, "update_totals": totals, "published_wall_clock": PUBLISHED[args.profile],
        "precision": "bf16 autocast (tokenizer, world model), fp32 actor-critic" if device.type == "cuda" else "fp32",
        "torch": torch.__version__,
        "note": "paper batch sizes" if args.batch_scale == 1 else
        f"batches scaled by {args.batch_scale}: timings and projection are NOT the paper profile's",
    }
    print(f"| delta_iris | {args.profile} | {result['device']} | x{args.batch_scale:g} | "
          f"tok {seconds['tokenizer'] * 1e3:.0f} ms | wm {seconds['world_model'] * 1e3:.0f} ms | "
          f"ac {seconds['actor_critic'] * 1e3:.0f} ms | {result['imagined_frames_per_second']:.0f} imagined fps | "
          f"{hours:.1f} h projected (updates only) |")
    print(json.dumps(result))
    if args.out:
        with open(args.out, "a") as handle:
            handle.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
