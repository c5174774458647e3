"""TWM speed at the paper profile: one update of each component and one imagination rollout.

    python benchmarks/bench_twm.py                       # cuda if available, else cpu
    python benchmarks/bench_twm.py --batch-scale 0.05    # CPU: shrink every batch (reported)

Times (median over --repeats after --warmup): world-model update (obs + dynamics, batch 100 x 16),
imagination rollout (400 x 15, reported as imagined frames/s), actor-critic update, and the three
pretraining updates; projects the hours of a full run (125,000 training steps + pretraining,
spec §10) and writes one JSON line and one markdown row (to --out, appended).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.twm.actor_critic import ActorCritic  # noqa: E402
from agents.twm.config import atari100k  # noqa: E402
from agents.twm.imagination import imagine  # noqa: E402
from agents.twm.observation_model import sample_onehot  # noqa: E402
from agents.twm.world_model import WorldModel  # noqa: E402

TRAIN_STEPS = 125_000  # spec §10
PRETRAIN_UPDATES = {"pretrain_obs": 24_000, "pretrain_dyn": 12_000, "pretrain_ac": 7_000}


def timed(fn, device: str, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def sampler_check(scale: float) -> dict:
    """Spec §12.1: the official schedule's balanced draws (τ = 20) vs uniform ones over the final buffer.

    Expected at scale 1: 56.6% of window starts in the first half, 50% point at ≈43.8k (uniform:
    83.9%, ≈20.2k). `scale` shrinks capacity, prefill and batch together (the shares then shift).
    """
    from agents.twm.flat_buffer import BalancedSampler

    capacity, prefill, batch = round(100_000 * scale), round(5_000 * scale), max(1, round(100 * scale))
    out = {}
    for label, temperature in (("balanced", 20.0), ("uniform", float("inf"))):
        sampler, generator = BalancedSampler(temperature), torch.Generator().manual_seed(0)
        size, counter = prefill, 0.0
        while size < capacity:
            size += 1
            counter += 1
            while counter >= 0.76:
                counter -= 0.76
                sampler.sample(size, batch, 16, generator)
        visits = sampler.visits.double()
        cumulative = visits.cumsum(0) / visits.sum()
        out[label] = {"first_half_share": round(float(visits[: capacity // 2].sum() / visits.sum()), 4),
                      "median_entry": int((cumulative >= 0.5).nonzero()[0])}
    return {"sampler_check_scale": scale, **out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-scale", type=float, default=1.0, help="multiply every batch size (CPU runs)")
    parser.add_argument("--num-actions", type=int, default=18)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="append the markdown row here")
    parser.add_argument("--sampler-check", type=float, default=None, metavar="SCALE",
                        help="only run the spec §12.1 sampler simulation at this scale (1 = full) and exit")
    args = parser.parse_args()
    if args.sampler_check is not None:
        print(json.dumps(sampler_check(args.sampler_check)))
        return
    torch.manual_seed(0)
    base = atari100k()
    config = replace(base, wm_batch_size=max(1, round(base.wm_batch_size * args.batch_scale)),
                     ac_batch_size=max(1, round(base.ac_batch_size * args.batch_scale)))
    device, A = args.device, args.num_actions
    wm = WorldModel(config, 4, A).to(device)
    ac = ActorCritic(config, A).to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    B, L = config.wm_batch_size, config.wm_sequence_length
    obs = torch.rand(B, L + 2, 4, 64, 64, device=device)
    actions = torch.randint(0, A, (B, L + 1), device=device)
    rewards = torch.tanh(torch.randn(B, L + 1, device=device))
    flags = torch.zeros(B, L + 1, dtype=torch.bool, device=device)
    n = config.ac_batch_size
    uniform = torch.zeros(n, config.z_categoricals, config.z_categories, device=device)
    z0 = sample_onehot(uniform, gen).flatten(-2)
    a0 = torch.randint(0, A, (n,), device=device)
    r0 = torch.zeros(n, device=device)
    d0 = torch.zeros(n, dtype=torch.bool, device=device)
    fresh_obs = torch.rand(n, 4, 64, 64, device=device)

    def fresh(count: int) -> torch.Tensor:
        return sample_onehot(wm.obs_model.eval().encode(fresh_obs[:count]), gen).flatten(-2)

    def rollout():
        return imagine(wm.dyn_model, ac, z0, a0, r0, d0, z0, config.ac_horizon, gen, fresh)

    trajectories = rollout()
    frames = obs[:, 1:-1].reshape(-1, 4, 64, 64)[: config.pretrain_obs_chunk]
    if len(frames) < config.pretrain_obs_chunk:
        frames = torch.rand(max(1, round(config.pretrain_obs_chunk * args.batch_scale)), 4, 64, 64, device=device)
    log_probs = torch.log_softmax(torch.randn(B, L + 2, config.z_categoricals, config.z_categories, device=device), -1)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t = {
        "wm_update_s": timed(lambda: wm.update(obs, actions, rewards, flags, flags, gen), device, args.warmup,
                             args.repeats),
        "imagination_s": timed(rollout, device, args.warmup, args.repeats),
        "ac_update_s": timed(lambda: ac.update(trajectories.z, trajectories.actions, trajectories.rewards,
                                               trajectories.discounts, trajectories.ends, trajectories.weights),
                             device, args.warmup, args.repeats),
        "pretrain_obs_s": timed(lambda: wm.pretrain_obs(frames, gen), device, args.warmup, args.repeats),
        "pretrain_dyn_s": timed(lambda: wm.pretrain_dyn(log_probs, actions, rewards, flags, flags, gen), device,
                                args.warmup, args.repeats),
    }
    step = t["wm_update_s"] + t["imagination_s"] + t["ac_update_s"]
    pretrain = (t["pretrain_obs_s"] * PRETRAIN_UPDATES["pretrain_obs"] + t["pretrain_dyn_s"]
                * PRETRAIN_UPDATES["pretrain_dyn"] + t["ac_update_s"] * PRETRAIN_UPDATES["pretrain_ac"])
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else f"cpu ({torch.get_num_threads()} threads)"
    result = {
        "agent": "twm", "device": name, "batch_scale": args.batch_scale, "wm_batch": B, "ac_batch": n,
        "horizon": config.ac_horizon, **{k: round(v, 5) for k, v in t.items()},
        "imagined_frames_per_s": round(n * config.ac_horizon / t["imagination_s"], 1),
        "train_step_s": round(step, 5),
        "projected_hours_full_run": round((step * TRAIN_STEPS + pretrain) / 3600, 2),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None,
        "note": "batch-scaled: projection not comparable to a full-batch run" if args.batch_scale != 1 else "",
    }
    print(json.dumps(result))
    row = (f"| {name} | {args.batch_scale} | {t['wm_update_s'] * 1e3:.1f} | {t['imagination_s'] * 1e3:.1f} "
           f"| {result['imagined_frames_per_s']:.0f} | {t['ac_update_s'] * 1e3:.1f} | {step * 1e3:.1f} "
           f"| {result['projected_hours_full_run']} | {result['peak_memory_gib']} |")
    print(row)
    if args.out:
        with open(args.out, "a") as handle:
            handle.write(row + "\n")


if __name__ == "__main__":
    main()
