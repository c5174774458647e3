"""IRIS speed at the paper profile: one update of each component and one imagination rollout.

    python benchmarks/bench_iris.py [--batch-scale 0.125] [--repeats 3] [--actions 4] [--out FILE]

Times (after one warm-up) a tokenizer update (batch 256 frames, LPIPS on if its weights are present,
else a frozen randomly initialised LPIPS of the same size so the cost is the same), a world-model
update (64 × 20 steps), an actor-critic update (64 × (20 burn-in + 1), H = 20 imagination) and a
no-grad imagination rollout of H = 20 steps for 64 trajectories (imagined frames/s). On CPU use
--batch-scale to shrink every batch (reported). Writes one JSON line (and prints a markdown row)
with the device, per-update seconds, peak memory and the projected hours for a full 600-epoch run.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.base import EnvInfo  # noqa: E402
from agents.common import lpips as lpips_lib  # noqa: E402
from agents.iris.agent import IrisAgent  # noqa: E402
from agents.iris.batches import SegmentBatch  # noqa: E402
from agents.iris.config import atari100k  # noqa: E402
from agents.iris.imagination import WorldModelEnv  # noqa: E402
from agents.iris.schedule import build_schedule  # noqa: E402
from agents.iris.training import (actor_critic_step, to_frames, tokenizer_step,  # noqa: E402
                                  world_model_step)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device, repeats: int) -> float:
    fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats


def _segments(rng: np.random.Generator, batch: int, length: int, actions: int) -> SegmentBatch:
    return SegmentBatch(obs=rng.integers(0, 256, (batch, length, 3, 64, 64), dtype=np.uint8),
                        actions=rng.integers(0, actions, (batch, length)), rewards=rng.normal(size=(batch, length)).astype(np.float32),
                        ends=np.zeros((batch, length), bool), valid=np.ones((batch, length), bool))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-scale", type=float, default=1.0, help="multiply every batch size (CPU runs)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--actions", type=int, default=4)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/bench_iris.jsonl"))
    args = parser.parse_args()
    device = torch.device(args.device)
    cfg = atari100k()
    scale = lambda n: max(1, int(round(n * args.batch_scale)))  # noqa: E731
    agent = IrisAgent(cfg, EnvInfo("atari", "Breakout", args.actions, (3, 64, 64)), device=str(device))
    lpips_real = agent.perceptual_on
    if not lpips_real:  # same cost as the real network; values are irrelevant for timing
        agent.tokenizer.lpips = lpips_lib.LPIPS().to(device)
    rng = np.random.default_rng(0)
    training, ac = cfg.training, cfg.actor_critic
    tok_batch, wm_batch, ac_batch = (scale(training.tokenizer.batch_size), scale(training.world_model.batch_size),
                                     scale(training.actor_critic.batch_size))
    frames = to_frames(rng.integers(0, 256, (tok_batch, 3, 64, 64), dtype=np.uint8), device)
    wm_data = _segments(rng, wm_batch, cfg.world_model.max_blocks, args.actions)
    ac_data = _segments(rng, ac_batch, ac.burn_in + 1, args.actions)
    wm_env = WorldModelEnv(agent.tokenizer, agent.world_model)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = {
        "tokenizer_update": _time(lambda: tokenizer_step(agent.tokenizer, agent.optimizers["tokenizer"], frames, 10.0),
                                  device, args.repeats),
        "world_model_update": _time(lambda: world_model_step(agent.world_model, agent.tokenizer,
                                                             agent.optimizers["world_model"], wm_data, device, 10.0),
                                    device, args.repeats),
        "actor_critic_update": _time(lambda: actor_critic_step(agent.actor_critic, wm_env, agent.optimizers["actor_critic"],
                                                               ac_data, ac, device, 10.0), device, args.repeats),
    }
    agent.tokenizer.eval()
    agent.world_model.eval()
    start_frames = to_frames(ac_data.obs[:, -1], device)

    def rollout() -> None:
        with torch.no_grad():
            wm_env.reset(start_frames)
            for k in range(ac.horizon):
                wm_env.step(torch.zeros(ac_batch, dtype=torch.long, device=device), predict_next=k < ac.horizon - 1)

    seconds["imagination_rollout"] = _time(rollout, device, args.repeats)
    schedule = build_schedule(training, 100_000)
    updates = {name: sum(schedule.updates(name, e, getattr(training, name)) for e in range(1, schedule.total_epochs + 1))
               for name in ("tokenizer", "world_model", "actor_critic")}
    projected_h = sum(updates[n] * seconds[f"{n}_update"] for n in updates) / 3600
    row = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "batch_scale": args.batch_scale, "batches": {"tokenizer": tok_batch, "world_model": wm_batch, "actor_critic": ac_batch},
        "lpips_weights": "published" if lpips_real else "random (same cost)",
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
        "imagined_frames_per_s": round(ac_batch * ac.horizon / seconds["imagination_rollout"], 1),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None,
        "projected_update_hours_full_run": round(projected_h / args.batch_scale, 1),
        "published_hours": "≈84 (3.5 A100-days, paper) – 130 (Δ-IRIS App. C)",
        "torch": torch.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as handle:
        handle.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=1))
    print(f"| {row['device']} | x{args.batch_scale} | " + " | ".join(f"{v:.3f}" for v in seconds.values())
          + f" | {row['imagined_frames_per_s']} | {row['projected_update_hours_full_run']} |")


if __name__ == "__main__":
    main()
