import json
import subprocess
import sys
from functools import partial

import imageio.v2 as imageio
import numpy as np
import pytest
from conftest import ROOT

from pixel_dqn.config import PixelEnvConfig, StateEnvConfig
from pixel_dqn.envs import make_envs
from pixel_dqn.policies import push_toward_tilt
from pixel_dqn.video import record_episode


def _frames(path):
    reader = imageio.get_reader(path)
    try:
        frames = [np.asarray(frame) for frame in reader]
    finally:
        reader.close()
    return frames


def test_heuristic_episode_video_has_one_frame_per_state(tmp_path):
    recording = record_episode(push_toward_tilt, partial(make_envs, StateEnvConfig()),
                               tmp_path / "heuristic", seed=3,
                               render_kwargs={"render_mode": "rgb_array"})
    steps = int(recording.episode_return)  # +1 per step
    assert recording.frames == steps + 1  # the reset state and one per step
    for path in (recording.mp4, recording.gif):
        frames = _frames(path)
        assert len(frames) == steps + 1
        assert frames[0].shape[:2] == (400, 600)  # gymnasium's full resolution


def test_pixel_agent_video_shows_the_agents_view_beside_the_frame(tmp_path):
    make = partial(make_envs, PixelEnvConfig(max_episode_steps=25))
    recording = record_episode(lambda obs: np.zeros(len(obs), np.int32), make,
                               tmp_path / "pixels", seed=0)
    frames = _frames(recording.gif)
    assert len(frames) == recording.frames == int(recording.episode_return) + 1
    height, width = frames[0].shape[:2]
    assert height == 400 and width == 600 + 90 * 4 + 20  # frame + 4x patch panel
    assert len(_frames(recording.mp4)) == recording.frames


@pytest.mark.slow
def test_evaluate_heuristic_reproduces_the_notebooks_distribution(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "evaluate.py"), "policy=heuristic",
         "episodes=500", "max_episode_steps=200", "video=true", f"video_dir={tmp_path}"],
        capture_output=True, text=True, check=True, timeout=300).stdout
    summary = json.loads(out.splitlines()[0])
    assert summary["episodes"] == 500 and 40 <= summary["mean"] <= 44  # notebook: 42.0 +- 8.6
    assert 5 <= summary["std"] <= 12 and summary["max"] <= 200
    assert (tmp_path / "heuristic_episode_seed0.mp4").is_file()
    assert (tmp_path / "heuristic_episode_seed0.gif").is_file()


def test_evaluate_rejects_an_unknown_policy_in_one_line():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"),
                           "policy=random"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "policy='random'" in lines[0] and "heuristic" in lines[0]
