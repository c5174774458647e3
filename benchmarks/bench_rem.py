"""REM speed at the paper profile: one update of V, M and C, and one imagination rollout (imagined frames/s),
next to IRIS's imagination at IRIS's own batch and horizon (the comparison behind REM's 15.4x, spec §10).

    python benchmarks/bench_rem.py                       # cuda if present, else cpu
    python benchmarks/bench_rem.py --batch-scale 0.0625  # CPU: shrink every batch (reported in the output)

Inputs are random frames/tokens (speed does not depend on data). The tokenizer's LPIPS term is timed
with an LPIPS network of the real architecture (random weights if the weight files are absent: same cost).
Projected epoch times use each agent's own per-epoch workload: REM 200 V + 200 M + 100 C updates,
IRIS 200 actor-critic updates (the paper's per-epoch imagination comparison, 309 s vs 20 s on an RTX 4090).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.base import EnvInfo  # noqa: E402
from agents.common import lpips  # noqa: E402
from agents.rem.agent import RemAgent  # noqa: E402
from agents.rem.config import atari100k  # noqa: E402
from agents.rem.controller import actor_critic_loss, imagine  # noqa: E402

NUM_ACTIONS = 18
PAPER = {"rem_epoch_s": {"tokenizer": 12, "world_model": 39, "controller": 20},
         "iris_epoch_s": {"tokenizer": 34, "world_model": 55, "actor_critic": 309}, "imagination_speedup": 15.4}


def timed(fn, device: str, repeats: int, label: str = "") -> float:
    fn()  # warm-up (allocations, kernels)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / repeats
    print(f"  {label}: {seconds:.3f} s", file=sys.stderr, flush=True)
    return seconds


def scaled(batch: int, scale: float) -> int:
    return max(1, round(batch * scale))


def bench_rem(device: str, scale: float, repeats: int) -> dict:
    cfg = atari100k()
    agent = RemAgent(cfg, EnvInfo("atari", "bench", NUM_ACTIONS, (3, 64, 64)), device=device)
    directory = lpips.weights_dir(cfg.tokenizer.weights_dir)
    have_weights = not lpips.missing_files(directory)
    agent._perceptual = (lpips.LPIPS.from_directory(directory) if have_weights else lpips.LPIPS()).to(device)
    tc, wc, cc = cfg.tokenizer, cfg.world_model, cfg.controller
    b_v, b_m, b_c = scaled(tc.batch_size, scale), scaled(wc.batch_size, scale), scaled(cc.batch_size, scale)
    frames_v = torch.rand(b_v, 3, 64, 64, device=device)
    frames_m = torch.rand(b_m, wc.segment_blocks, 3, 64, 64, device=device)
    frames_c = torch.rand(b_c, 1 + cc.burn_in, 3, 64, 64, device=device)
    actions_m = torch.randint(0, NUM_ACTIONS, (b_m, wc.segment_blocks), device=device)
    actions_c = torch.randint(0, NUM_ACTIONS, (b_c, 1 + cc.burn_in), device=device)

    def tokenizer_update():
        agent.tokenizer.train()
        loss, _ = agent.tokenizer.loss(frames_v, agent._perceptual.train())
        agent.tokenizer_opt.zero_grad(set_to_none=True)
        loss.backward()
        agent.tokenizer_opt.step()

    def world_model_update():
        agent.tokenizer.eval()
        tokens = agent.tokenizer.tokenize(frames_m)
        agent.world_model.train()
        zeros = torch.zeros_like(actions_m, dtype=torch.float32)
        loss, _ = agent.world_model.loss(tokens, actions_m, zeros, zeros.bool(), torch.ones_like(zeros, dtype=torch.bool),
                                         agent.tokenizer.codebook)
        agent.world_model_opt.zero_grad(set_to_none=True)
        loss.backward()
        agent.world_model_opt.step()

    def rollout(grad: bool):  # from real frames: burn-in and context encoding included, as in an update
        agent.tokenizer.eval()
        agent.world_model.eval()
        tokens = agent.tokenizer.tokenize(frames_c)
        mask = torch.ones_like(actions_c, dtype=torch.bool)
        with torch.set_grad_enabled(grad):
            return imagine(agent.tokenizer, agent.world_model, agent.controller, cc, wc.context_blocks, tokens,
                           actions_c, mask)

    def controller_update():
        loss, _ = actor_critic_loss(rollout(True), cc)
        agent.controller_opt.zero_grad(set_to_none=True)
        loss.backward()
        agent.controller_opt.step()

    steps = cc.imagine_horizon - wc.context_blocks + 1
    times = {"tokenizer": timed(tokenizer_update, device, repeats, "REM tokenizer update"),
             "world_model": timed(world_model_update, device, repeats, "REM world-model update"),
             "controller": timed(controller_update, device, repeats, "REM controller update"),
             "imagination": timed(lambda: rollout(False), device, repeats, "REM imagination rollout")}
    per_epoch = {"tokenizer": tc.updates_per_epoch * times["tokenizer"],
                 "world_model": wc.updates_per_epoch * times["world_model"],
                 "controller": cc.updates_per_epoch * times["controller"]}
    return {"batch": {"tokenizer": b_v, "world_model": b_m, "controller": b_c}, "horizon_steps": steps,
            "lpips_weights": "loaded" if have_weights else "random (timing only)",
            "update_s": times, "imagined_frames_per_s": b_c * steps / times["imagination"],
            "epoch_s": per_epoch, "projected_hours_600_epochs": sum(per_epoch.values()) * cfg.total_epochs / 3600}


def bench_iris(device: str, scale: float, repeats: int) -> dict | None:
    try:
        import numpy as np

        from agents.iris.agent import IrisAgent
        from agents.iris.batches import SegmentBatch
        from agents.iris.config import atari100k as iris_atari100k
        from agents.iris.imagination import WorldModelEnv
        from agents.iris.training import actor_critic_losses
        from agents.iris.training import imagine as iris_imagine
    except ImportError as err:  # IRIS not in the tree (yet)
        return {"skipped": f"agents.iris not importable: {err}"}
    cfg = iris_atari100k()
    agent = IrisAgent(cfg, EnvInfo("atari", "bench", NUM_ACTIONS, (3, 64, 64)), device=device)
    ac = cfg.actor_critic
    batch_size = scaled(cfg.training.actor_critic.batch_size, scale)
    rng = np.random.default_rng(0)
    t = ac.burn_in + 1
    batch = SegmentBatch(rng.integers(0, 255, (batch_size, t, 3, 64, 64), dtype=np.uint8),
                         rng.integers(0, NUM_ACTIONS, (batch_size, t)), np.zeros((batch_size, t), np.float32),
                         np.zeros((batch_size, t), bool), np.ones((batch_size, t), bool))
    env = WorldModelEnv(agent.tokenizer, agent.world_model)

    def rollout(grad: bool):
        agent.tokenizer.eval()
        agent.world_model.eval()
        with torch.set_grad_enabled(grad):
            return iris_imagine(agent.actor_critic, env, batch, ac, device)

    def actor_critic_update():
        losses = actor_critic_losses(rollout(True), ac)
        losses["total"].backward()

    times = {"actor_critic": timed(actor_critic_update, device, repeats, "IRIS actor-critic update"),
             "imagination": timed(lambda: rollout(False), device, repeats, "IRIS imagination rollout")}
    return {"batch": batch_size, "horizon_steps": ac.horizon, "update_s": times,
            "imagined_frames_per_s": batch_size * ac.horizon / times["imagination"],
            "epoch_s": {"actor_critic": cfg.training.actor_critic.steps_per_epoch * times["actor_critic"]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-scale", type=float, default=1.0, help="multiply every paper batch (CPU runs)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-iris", action="store_true", help="skip the IRIS comparison")
    parser.add_argument("--out", type=Path, help="append the JSON record to this file")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    device_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    record = {"benchmark": "rem", "device": device_name, "torch": torch.__version__, "batch_scale": args.batch_scale,
              "threads": torch.get_num_threads(), "rem": bench_rem(args.device, args.batch_scale, args.repeats)}
    if args.device.startswith("cuda"):
        record["rem"]["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
    if not args.no_iris:
        record["iris"] = bench_iris(args.device, args.batch_scale, args.repeats)
        iris = record["iris"]
        if iris and "epoch_s" in iris:
            record["imagination_epoch_speedup"] = iris["epoch_s"]["actor_critic"] / record["rem"]["epoch_s"]["controller"]
            record["paper_imagination_epoch_speedup"] = PAPER["imagination_speedup"]
    record["paper_epoch_s_rtx4090"] = PAPER
    text = json.dumps(record, indent=None)
    print(text)
    rem = record["rem"]
    print(f"| {device_name} | scale {args.batch_scale} | V {rem['update_s']['tokenizer']:.3f} s | "
          f"M {rem['update_s']['world_model']:.3f} s | C {rem['update_s']['controller']:.3f} s | "
          f"imagination {rem['imagined_frames_per_s']:.1f} frames/s | "
          f"IRIS/REM imagination epoch {record.get('imagination_epoch_speedup', float('nan')):.2f}x (paper 15.4x) |")
    if args.out:
        with open(args.out, "a") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
