"""Δ-IRIS paper profiles: per-component parameter counts and the epoch schedule (spec §4.2, §5.1, §6.1, §7)."""
import pytest
import torch

from agents.delta_iris.actor_critic import ActorCritic
from agents.delta_iris.config import atari100k, crafter, tiny
from agents.delta_iris.schedule import EpochSchedule
from agents.delta_iris.tokenizer import Tokenizer
from agents.delta_iris.world_model import WorldModel

torch.set_num_threads(1)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("profile, actions, expected", [
    (crafter, 17, {"tokenizer": 5_409_611, "encoder": 1_892_992, "decoder": 1_548_867, "frame_embedder": 1_761_608,
                   "quantizer": 132_160, "world_model": 11_948_457, "transformer": 9_522_688, "itoken": 447_656,
                   "actor_critic": 3_745_216}),
    (atari100k, 4, {"tokenizer": 4_065_715, "world_model": 3_577_257, "actor_critic": 3_608_245}),
])
def test_parameter_counts_match_spec(profile, actions, expected):
    config = profile()
    tokenizer = Tokenizer(config.tokenizer, actions)
    world_model = WorldModel(config.world_model, actions, config.tokenizer.codebook_size, config.tokenizer.num_tokens)
    actor_critic = ActorCritic(config.actor_critic, actions)
    got = {"tokenizer": count(tokenizer), "encoder": count(tokenizer.encoder), "decoder": count(tokenizer.decoder),
           "frame_embedder": count(tokenizer.frame_embedder), "quantizer": count(tokenizer.quantizer),
           "world_model": count(world_model), "transformer": count(world_model.transformer),
           "itoken": count(world_model.frame_cnn) + count(world_model.frame_ln),
           "actor_critic": count(actor_critic.model)}
    assert {k: got[k] for k in expected} == expected
    # The EMA target is an identical, frozen copy.
    assert count(actor_critic.target) == count(actor_critic.model)
    assert not any(p.requires_grad for p in actor_critic.target.parameters())


def test_crafter_shapes_from_spec():
    config = crafter()
    assert config.tokenizer.decoder_input_channels == 76
    assert atari100k().tokenizer.decoder_input_channels == 84
    assert (config.world_model.max_blocks, config.world_model.embed_dim) == (21, 512)
    assert (atari100k().world_model.max_blocks, atari100k().world_model.embed_dim) == (26, 256)
    assert config.actor_critic.burn_in + config.actor_critic.horizon + 1 == config.world_model.max_blocks
    atari = atari100k()
    assert atari.actor_critic.burn_in + atari.actor_critic.horizon + 1 == atari.world_model.max_blocks


def total_updates(config, budget):
    schedule = EpochSchedule.for_budget(config, budget)
    totals = {}
    for name in ("tokenizer", "world_model", "actor_critic"):
        train = getattr(config, f"train_{name}")
        totals[name] = sum(schedule.updates(name, epoch, train.steps_first_epoch, train.steps_per_epoch)
                           for epoch in range(1, schedule.total_epochs + 1) if schedule.trains(name, epoch))
    return schedule, totals


def test_paper_schedules_give_the_official_epochs_and_update_totals():
    schedule, totals = total_updates(crafter(), 10_000_000)
    assert (schedule.collect_epochs, schedule.total_epochs) == (991, 1000)
    assert totals == {"tokenizer": 504_500, "world_model": 502_000, "actor_critic": 500_000}
    schedule, totals = total_updates(atari100k(), 100_000)
    assert (schedule.collect_epochs, schedule.total_epochs) == (491, 600)
    assert schedule.start_after == {"tokenizer": 5, "world_model": 50, "actor_critic": 75}
    assert totals == {"tokenizer": 119_000, "world_model": 66_000, "actor_critic": 105_000}


def test_plans_follow_the_budget_and_absorb_overshoot():
    schedule = EpochSchedule.for_budget(crafter(), 10_000_000)
    first = schedule.plan(0, 0)
    assert (first.collect_steps, first.random_actions) == (100_000, True)
    assert schedule.plan(1, 100_000).collect_steps == 10_000
    assert schedule.plan(2, 110_016).collect_steps == 10_000 - 16  # 16 envs overshot by 16 steps
    assert schedule.plan(991, 10_000_000).collect_steps == 0
    assert schedule.plan(1000, 10_000_000) is None


def test_small_budget_gives_a_proportionally_shorter_complete_schedule():
    schedule = EpochSchedule.for_budget(atari100k(), 10_000)
    assert schedule.collect_epochs == 1 + 40
    assert schedule.start_after == {"tokenizer": 0, "world_model": 4, "actor_critic": 6}
    assert schedule.total_epochs == 41 + 9
    tiny_schedule = EpochSchedule.for_budget(tiny(), 500)
    assert tiny_schedule.first_epoch_steps == 500 and tiny_schedule.collect_epochs == 1
    assert tiny_schedule.updates("tokenizer", 1, 150, 40) == round(150 * 500 / tiny().random_steps_first_epoch)
    assert tiny_schedule.updates("tokenizer", 2, 150, 40) == 40
    with pytest.raises(ValueError, match="budget_steps"):
        EpochSchedule.for_budget(tiny(), 0)
