"""Draw what the pixel agent sees: ``python scripts/pixel_state_picture.py [--out PNG]``.

For a few consecutive steps of one seeded episode, one row per step: the full 600x400 frame with
the crop box, then for each renderer (pygame, fast) the patch and the diff (current - previous:
gray is zero, white positive, black negative), scaled up for viewing. The crop is the default
env's (``conf/env/cartpole_pixels.yaml``), or another env config's with ``--env``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from omegaconf import OmegaConf

from pixel_dqn.config import PixelEnvConfig
from pixel_dqn.envs import make_single_env
from pixel_dqn.envs.screen import CropWindow, FastPatchRenderer, PygamePatchRenderer

ROOT = Path(__file__).resolve().parents[1]
ZOOM = 3
LABEL_HEIGHT = 22


def _label(image: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((LABEL_HEIGHT, image.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, image])


def _zoom(gray: np.ndarray, height: int) -> np.ndarray:
    scale = height / gray.shape[0]
    big = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    return cv2.cvtColor(big, cv2.COLOR_GRAY2RGB)


def _diff_image(current: np.ndarray, previous: np.ndarray) -> np.ndarray:
    diff = current.astype(np.int16) - previous.astype(np.int16)
    return np.clip(128 + diff // 2, 0, 255).astype(np.uint8)  # display only: 0 -> mid gray


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "pixel_state.png")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--env", type=Path, default=ROOT / "conf" / "env" / "cartpole_pixels.yaml",
                        help="the env config whose crop to draw")
    args = parser.parse_args()

    # the env file sets what differs from its schema, whose defaults fill in the rest
    env_yaml = OmegaConf.load(args.env)
    env_cfg = OmegaConf.merge(OmegaConf.structured(PixelEnvConfig),
                              {k: v for k, v in env_yaml.items() if k != "defaults"})
    crop = CropWindow.around_cart(OmegaConf.to_object(env_cfg))
    renderers = {"pygame": PygamePatchRenderer(crop, env_cfg.gray),
                 "fast": FastPatchRenderer(crop, env_cfg.gray)}
    env = make_single_env(env_cfg.id, None, "rgb_array")
    env.reset(seed=args.seed)
    for _ in range(6):  # let the pole start to fall so the diff shows motion
        env.step(1)
    previous = {name: r.patch(env) for name, r in renderers.items()}
    rows = []
    for step in range(args.steps):
        env.step(step % 2)
        frame = env.render().copy()
        top, bottom = crop.rows
        left = crop.left(float(env.unwrapped.state[0]))
        cv2.rectangle(frame, (left, top), (left + crop.width - 1, bottom - 1), (220, 0, 0), 2)
        frame = cv2.resize(frame, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        tiles = [_label(frame, f"step {step + 1}: frame and crop box")]
        for name, renderer in renderers.items():
            current = renderer.patch(env)
            tiles.append(_label(_zoom(current, frame.shape[0]), f"{name}: patch"))
            diff = _diff_image(current, previous[name])
            tiles.append(_label(_zoom(diff, frame.shape[0]), f"{name}: diff"))
            previous[name] = current
        rows.append(np.hstack([np.pad(t, ((4, 4), (4, 4), (0, 0)), constant_values=255)
                               for t in tiles]))
    env.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
