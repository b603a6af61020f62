import logging
from functools import partial

import numpy as np
import pytest
from conftest import make_buffer
from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator

from pixel_dqn.agents.dqn import DQNAgent
from pixel_dqn.checkpoint import CheckpointStore
from pixel_dqn.config import CNNConfig, DQNConfig, PixelEnvConfig, StateEnvConfig
from pixel_dqn.envs import make_env, make_pixel_env
from pixel_dqn.envs.snapshot import restore_envs, snapshot_envs
from pixel_dqn.metrics import MetricsWriter
from pixel_dqn.networks import build_cnn


def _save(store, step):
    return store.save(step, {"w": np.full(3, step, np.float32)}, {"step": step, "name": "x"})


def test_store_keeps_the_newest_k_and_loads_the_newest(tmp_path):
    store = CheckpointStore(tmp_path / "ckpt", keep=2)
    for step in (100, 200, 300):
        _save(store, step)
    assert [p.name for p in store.paths()] == ["step-0000000200", "step-0000000300"]
    latest = store.load_latest()
    assert latest.step == 300 and latest.state == {"step": 300, "name": "x"}
    np.testing.assert_array_equal(latest.arrays["w"], np.full(3, 300, np.float32))


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "no_manifest", "delete_state"])
def test_a_broken_newest_checkpoint_is_skipped_for_the_previous(tmp_path, caplog, damage):
    store = CheckpointStore(tmp_path / "ckpt", keep=3)
    _save(store, 100)
    newest = _save(store, 200)
    arrays = newest / "arrays.npz"
    if damage == "truncate":
        arrays.write_bytes(arrays.read_bytes()[:50])
    elif damage == "flip_byte":
        data = bytearray(arrays.read_bytes())
        data[len(data) // 2] ^= 0xFF
        arrays.write_bytes(bytes(data))
    elif damage == "no_manifest":  # killed before the completeness marker
        (newest / "MANIFEST.json").unlink()
    else:
        (newest / "state.pkl").unlink()
    with caplog.at_level(logging.WARNING):
        latest = store.load_latest()
    assert latest.step == 100
    if damage != "no_manifest":  # without a marker it is not even a candidate
        assert "skipping checkpoint" in caplog.text and "step-0000000200" in caplog.text


def test_a_writer_killed_mid_save_leaves_only_a_temporary_directory(tmp_path):
    store = CheckpointStore(tmp_path / "ckpt", keep=2)
    _save(store, 100)
    half = tmp_path / "ckpt" / ".tmp-step-0000000200-99999"  # another (dead) process's
    half.mkdir()
    (half / "arrays.npz").write_bytes(b"partial")
    assert store.load_latest().step == 100
    _save(store, 300)
    assert not half.exists()  # cleaned by the next save


def test_replay_state_round_trip_samples_the_same_batches():
    def buffer():
        return make_buffer(64, (2, 4, 5), np.uint8, np.random.default_rng(3), num_envs=2,
                            history=2, n_step=3, gamma=0.9, prioritized=True)

    rng = np.random.default_rng(0)
    a = buffer()
    a.start_episodes(np.arange(2), rng.integers(0, 255, (2, 2, 4, 5), dtype=np.uint8))
    for i in range(50):  # wraps the 32 slots per env
        a.add(np.arange(2), np.array([i % 2, 1]), np.ones(2), rng.integers(
            0, 255, (2, 2, 4, 5), dtype=np.uint8), np.array([i % 17 == 16, False]))
        if i % 17 == 16:
            a.start_episodes([0], rng.integers(0, 255, (1, 2, 4, 5), dtype=np.uint8))
    batch = a.sample(8, beta=0.5)
    a.update_priorities(batch.indices, rng.random(8))
    b = buffer()
    b.load_state_dict(*a.state_dict())
    assert len(a) == len(b)
    for _ in range(3):
        x, y = a.sample(8, 2, beta=0.7), b.sample(8, 2, beta=0.7)
        for field_a, field_b in zip(x, y, strict=True):
            np.testing.assert_array_equal(field_a, field_b)


def test_agent_state_round_trip_continues_identically():
    model = CNNConfig(obs_mode="diff", gray=True, filters=[4], kernel_sizes=[4], strides=[2],
                      dense_sizes=[8], dueling=True)
    build = partial(build_cnn, model, (2, 20, 30), 2)
    hparams = DQNConfig(jit_compile=False, learning_rate=1e-2, final_learning_rate=1e-3)
    rng = np.random.default_rng(0)
    buffer = make_buffer(100, (2, 20, 30), np.uint8, rng, history=2)
    buffer.start_episodes([0], rng.integers(0, 255, (1, 2, 20, 30), dtype=np.uint8))
    for i in range(60):
        buffer.add([0], [i % 2], [1.0], rng.integers(0, 255, (1, 2, 20, 30), dtype=np.uint8),
                   [False])
    a = DQNAgent(build, 2, hparams, total_gradient_steps=20)
    for _ in range(3):
        a.update(buffer.sample(16, 1), sync_target=True)
    b = DQNAgent(build, 2, hparams, total_gradient_steps=20)
    b.load_state_dict(a.state_dict())
    batch = buffer.sample(16, 2)
    metrics_a, _ = a.update(batch)
    metrics_b, _ = b.update(batch)
    assert metrics_a == metrics_b
    for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("make", [partial(make_env, StateEnvConfig(num_envs=2)),
                                  partial(make_pixel_env, PixelEnvConfig(num_envs=2)),
                                  partial(make_pixel_env, PixelEnvConfig(num_envs=2,
                                                                         renderer="pygame"))],
                         ids=["state", "pixels_fast", "pixels_pygame"])
def test_env_snapshot_continues_the_same_episodes(make):
    envs = make()
    envs.reset(seed=[1, 2])
    for i in range(30):
        envs.step(np.array([i % 2, 1]))
    restored = restore_envs(snapshot_envs(envs))
    for i in range(80):  # through episode ends and autoresets
        actions = np.array([(i // 3) % 2, i % 2])
        for x, y in zip(envs.step(actions)[:4], restored.step(actions)[:4], strict=True):
            np.testing.assert_array_equal(x, y)
    envs.close()
    restored.close()


def test_metrics_writer_resumes_without_duplicates_and_purges_tensorboard(tmp_path):
    def row(step):
        return {"kind": "train", "env_step": step, "episode": step, "return": float(step)}

    writer = MetricsWriter(tmp_path)
    for step in (10, 20):
        writer.write(row(step))
    position = writer.position(20)
    writer.write(row(30))  # after the checkpoint: lost work, written again on resume
    writer.close()
    writer = MetricsWriter(tmp_path, resume_from=position)
    for step in (30, 40):
        writer.write(row(step))
    writer.close()
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert [line.split(",")[1] for line in lines[1:]] == ["10", "20", "30", "40"]
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    steps = [e.step for e in events.Tensors("train/return")]
    assert steps == [10, 20, 30, 40]
