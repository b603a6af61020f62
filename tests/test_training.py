import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import PIXEL_SMOKE_OVERRIDES, ROOT, STATE_SMOKE_OVERRIDES

import pixel_dqn.trainers.dqn as dqn_trainer
from pixel_dqn.metrics import COLUMNS
from pixel_dqn.networks import load_q_network
from pixel_dqn.replay import ReplayBuffer
from pixel_dqn.trainers import train
from pixel_dqn.trainers.base import Trainer


def _rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_smoke_run_writes_the_run_directory(config, tmp_path):
    cfg = config(*STATE_SMOKE_OVERRIDES, "env.num_envs=2")
    result = train(cfg, tmp_path)
    assert len(result.returns) == 3
    for name in ("metrics.csv", "model.keras", "eval.json", "config.yaml", "timing.json"):
        assert (tmp_path / name).is_file(), name
    assert any((tmp_path / "tb").iterdir())
    rows = _rows(tmp_path)
    assert tuple(rows[0].keys()) == COLUMNS
    train_rows = [r for r in rows if r["kind"] == "train"]
    eval_rows = [r for r in rows if r["kind"] == "eval"]
    assert len(eval_rows) == 2 and train_rows
    steps = [int(r["env_step"]) for r in rows]
    assert steps == sorted(steps) and steps[-1] <= 400
    assert all(float(r["steps_per_s"]) > 0 for r in rows)
    assert sum(int(r["length"]) for r in train_rows) <= steps[-1]
    timing = json.loads((tmp_path / "timing.json").read_text())
    assert 399 <= timing["env_steps"] <= 400  # the budget is never exceeded
    assert {"act", "env", "train_step", "replay_sample", "other"} <= set(timing["phases"])
    shares = sum(p["share"] for p in timing["phases"].values())
    assert shares == pytest.approx(1.0, abs=0.01)
    summary = json.loads((tmp_path / "eval.json").read_text())
    assert summary["episodes"] == 3 and summary["mean"] == pytest.approx(result.mean)

    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "evaluate.py"), f"run_dir={tmp_path}",
         "episodes=4", "max_episode_steps=50", "trace=2"],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout
    lines = out.splitlines()
    printed = json.loads(lines[-4])
    assert printed["episodes"] == 4 and printed["max"] <= 50 and printed["min"] >= 1
    traced = lines[-2:]  # one line per traced episode: length, ending, end state, x range
    assert [line.split(" ")[:4] for line in traced] == [
        ["episode", "0", "(seed", "0):"], ["episode", "1", "(seed", "1):"]]
    assert all(("time limit" in line) == line.split(": ")[1].startswith("50 steps")
               for line in traced)


def test_keep_best_evaluates_and_saves_the_best_periodic_evaluations_network(
    config, tmp_path, monkeypatch
):
    kept = {}
    keep = Trainer.evaluate_if_due

    def record_weights_at_each_evaluation(run):
        evals = run.state.evals
        keep(run)
        if run.state.evals > evals:  # an evaluation ran: remember what it evaluated
            kept[run.state.step] = run.network().get_weights()

    monkeypatch.setattr(Trainer, "evaluate_if_due", record_weights_at_each_evaluation)
    cfg = config(*STATE_SMOKE_OVERRIDES, "eval.keep_best=true", "eval.every_steps=100")
    train(cfg, tmp_path)
    evals = [(float(r["return"]), int(r["env_step"])) for r in _rows(tmp_path)
             if r["kind"] == "eval"]
    best_return, best_step = max(evals)  # ties: the latest step
    record = json.loads((tmp_path / "eval.json").read_text())
    assert record["kept_from"] == {"env_step": best_step, "periodic_eval": best_return}
    assert record["last_network"]["episodes"] == record["episodes"] == 3
    saved = load_q_network(tmp_path / "model.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(saved, kept[best_step], strict=True))


def test_eval_json_counts_the_greedy_env_steps_of_every_evaluation(config, tmp_path):
    cfg = config(*STATE_SMOKE_OVERRIDES, "eval.every_steps=100")
    train(cfg, tmp_path)
    record = json.loads((tmp_path / "eval.json").read_text())
    rows = [r for r in _rows(tmp_path) if r["kind"] == "eval"]
    cost = record["evaluation_env_steps"]
    assert "kept_from" not in record and "last_network" not in record  # no selection
    timing = json.loads((tmp_path / "timing.json").read_text())
    assert cost["training"] == timing["env_steps"] <= cfg.total_steps
    # one env per episode: an env done with its episode plays on uncounted (CartPole's return
    # is its length) until the longest one ends, so each evaluation played between the sum of
    # its lengths and episodes * the longest
    n = cfg.eval.episodes
    assert rows and cost["periodic"] > 0
    assert sum(float(r["length"]) * n for r in rows) <= cost["periodic"]
    assert cost["periodic"] <= sum(float(r["return_max"]) * n for r in rows)
    # the default weight average: its online network is graded beside it, on the same seeds
    online = record["online_network"]
    assert cost["final"] == record["env_steps"] + online["env_steps"]
    for graded in (record, online):  # CartPole's return is its length
        episodes = graded["episodes"]
        assert graded["mean_length"] * episodes <= graded["env_steps"] <= episodes * graded["max"]


def test_a_weight_average_is_graded_beside_the_online_network(config, tmp_path,
                                                             monkeypatch):
    graded = []
    evaluate = Trainer.evaluate

    def record_policies(run, episodes, index, policy=None):
        graded.append((index, policy))
        return evaluate(run, episodes, index, policy)

    monkeypatch.setattr(Trainer, "evaluate", record_policies)
    cfg = config(*STATE_SMOKE_OVERRIDES, "trainer.eval_weight_average=0.9")
    train(cfg, tmp_path)
    record = json.loads((tmp_path / "eval.json").read_text())
    final = [policy for index, policy in graded if index == -1]
    assert final[0] is None and final[1].__name__ == "online_greedy_actions"  # same episodes
    online = record["online_network"]
    assert online["episodes"] == record["episodes"] == cfg.eval.final_episodes
    assert record["evaluation_env_steps"]["final"] == record["env_steps"] + online["env_steps"]


def test_evaluate_script_rejects_a_missing_run_dir_in_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "evaluate.py"), f"run_dir={tmp_path / 'nope'}"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "config.yaml" in lines[0] and "run_dir" in lines[0]


def test_truncated_steps_are_stored_as_bootstrapping(config, tmp_path, monkeypatch):
    stored, starts, buffers = [], [], []

    class RecordingBuffer(ReplayBuffer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            buffers.append(self)

        def add(self, env_ids, actions, rewards, next_obs, terminated):
            stored.extend(zip(map(tuple, next_obs), terminated, strict=True))
            super().add(env_ids, actions, rewards, next_obs, terminated)

        def start_episodes(self, env_ids, obs):
            starts.extend(map(tuple, obs))
            super().start_episodes(env_ids, obs)

    monkeypatch.setattr(dqn_trainer, "ReplayBuffer", RecordingBuffer)
    cfg = config(*STATE_SMOKE_OVERRIDES, "env.max_episode_steps=15", "env.num_envs=3",
                         "trainer.buffer_size=1000")
    train(cfg, tmp_path)
    lengths = np.array([int(r["length"]) for r in _rows(tmp_path) if r["kind"] == "train"])
    assert (lengths == 15).sum() > 3 and (lengths < 15).sum() > 3  # truncations and terminations
    terminals = sum(1 for _, t in stored if t)
    terminals_at_limit = terminals - (lengths < 15).sum()
    assert 0 <= terminals_at_limit < (lengths == 15).sum()  # truncation is not a terminal
    # the autoreset step (terminal obs -> reset obs) is never a transition: every env step is
    # stored once, and each finished episode starts a new one from its reset observation
    timing = json.loads((tmp_path / "timing.json").read_text())
    assert len(stored) == timing["env_steps"] and len(starts) >= 3 + len(lengths) - 3
    batch = buffers[0].sample(2000)
    final_states = {obs for obs, t in stored if t}
    assert not any(tuple(obs) in final_states for obs in batch.obs)
    assert {tuple(obs) for obs in batch.obs} & set(starts)  # episodes do begin at resets


def test_a_mixed_bfloat16_run_trains_and_saves_a_bfloat16_network(config, tmp_path):
    cfg = config(*PIXEL_SMOKE_OVERRIDES, "model.precision=mixed_bfloat16", "env.num_envs=2")
    result = train(cfg, tmp_path)
    assert len(result.returns) == 3
    losses = [float(r["loss"]) for r in _rows(tmp_path) if r["loss"]]
    assert losses and np.isfinite(losses).all()
    network = load_q_network(tmp_path / "model.keras")
    assert network.get_layer("conv_0").compute_dtype == "bfloat16"
    assert network.output.dtype == "float32"


@pytest.mark.slow
@pytest.mark.parametrize("renderer", ["fast", "pygame"])
def test_pixel_smoke_run_trains_a_cnn_headless_and_evaluates(config, tmp_path, renderer,
                                                             monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)  # headless: no X server is needed
    cfg = config(*PIXEL_SMOKE_OVERRIDES, f"env.renderer={renderer}", "env.num_envs=2")
    result = train(cfg, tmp_path)
    assert len(result.returns) == 3 and min(result.lengths) >= 1
    rows = _rows(tmp_path)
    assert [r for r in rows if r["kind"] == "eval"] and np.isfinite(float(rows[-1]["loss"]))
    if renderer == "pygame":
        return  # evaluate.py rebuilds the pixel env from the run's config: once is enough
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "evaluate.py"), f"run_dir={tmp_path}",
         "episodes=2"],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout
    assert json.loads(out.splitlines()[-2])["episodes"] == 2


def test_the_pixel_network_sees_only_the_envs_uint8_frames(config, tmp_path, monkeypatch):
    """No state reaches the network: its one input is the env's uint8 frame stack, and every
    observation it is given, acting or learning, is such a stack of rendered patches."""
    seen = []
    original_act, original_update = dqn_trainer.DQNAgent.act, dqn_trainer.DQNAgent.update

    def act(self, obs, epsilon, rng):
        seen.append(obs)
        return original_act(self, obs, epsilon, rng)

    def update(self, batches, sync_target=False):
        seen.extend([batches.obs, batches.next_obs])
        return original_update(self, batches, sync_target)

    monkeypatch.setattr(dqn_trainer.DQNAgent, "act", act)
    monkeypatch.setattr(dqn_trainer.DQNAgent, "update", update)
    cfg = config(*PIXEL_SMOKE_OVERRIDES, "+arm=track_view", "checkpoint.enabled=false",
                         "tensorboard=false")
    train(cfg, tmp_path)
    frame_shape = (2, 32, 120)  # diff_current: the previous and the current 32x120 patch
    model = load_q_network(tmp_path / "model.keras")
    assert len(model.inputs) == 1 and model.inputs[0].dtype == "uint8"
    assert tuple(model.inputs[0].shape[1:]) == frame_shape
    assert seen and all(o.dtype == np.uint8 and o.shape[-3:] == frame_shape for o in seen)
    # rendered patches: white background with dark cart pixels, not a 4-float state
    assert all(o.max() == 255 and o.min() < 100 for o in seen)
