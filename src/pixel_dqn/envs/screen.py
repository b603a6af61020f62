"""CartPole's screen geometry and the patch renderers that turn a state into a gray patch.

Both renderers crop the same window: a horizontal band of the screen (``band`` fractions of its
height) and ``window`` of its width centred on the cart, clamped at the screen edges, resized to
``size`` with area interpolation. ``pygame`` renders gymnasium's 600x400 frame and crops it;
``fast`` draws the cart, pole, axle and track straight into the patch with OpenCV, from the same
geometry constants, and never builds the full frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import gymnasium as gym
import numpy as np

from pixel_dqn.config import PixelEnvConfig

# gymnasium.envs.classic_control.cartpole.CartPoleEnv.render (gymnasium 1.4), in screen pixels
SCREEN_WIDTH, SCREEN_HEIGHT = 600, 400
X_THRESHOLD = 2.4
POLE_HALF_LENGTH = 0.5
POLE_WIDTH = 10.0
CART_WIDTH, CART_HEIGHT = 50.0, 30.0
CART_TOP_Y = 100.0  # gymnasium draws y upwards, then flips the frame
AXLE_OFFSET = CART_HEIGHT / 4.0
CART_RGB, POLE_RGB, AXLE_RGB, BACKGROUND_RGB = (0, 0, 0), (202, 152, 101), (129, 132, 203), (
    255, 255, 255)


def _gray(rgb: tuple[int, int, int]) -> int:
    return int(cv2.cvtColor(np.array([[rgb]], np.uint8), cv2.COLOR_RGB2GRAY)[0, 0])


@dataclass(frozen=True)
class CropWindow:
    """Which part of the screen becomes the patch, and the patch's size in pixels."""

    band: tuple[float, float]
    """Top and bottom of the band, as fractions of the screen height (0 = top)."""
    window: float
    """Width of the window, as a fraction of the screen width, centred on the cart."""
    size: tuple[int, int]
    """Patch height and width after resizing."""
    follow: float
    """How far the window's centre follows the cart: 1 keeps the cart in the middle (its
    position shows only where the window clamps at the screen edges), 0.5 moves the window
    half as far as the cart, so the cart's place in the patch gives its position on the track
    and the diff its velocity (with a 0.6 window the cart stays in view up to the track's end)."""

    @classmethod
    def around_cart(cls, env: PixelEnvConfig) -> CropWindow:
        """The window around the cart that a pixel env config describes."""
        return cls(band=(float(env.band[0]), float(env.band[1])), window=float(env.window),
                   size=(int(env.size[0]), int(env.size[1])), follow=float(env.follow))

    @classmethod
    def whole_track(cls, env: PixelEnvConfig) -> CropWindow:
        """The coarse view of the whole track (the same band, fixed on the screen, as wide as
        the patch and ``env.track_rows`` high) that ``env.track_rows`` stacks under the patch."""
        return cls(band=(float(env.band[0]), float(env.band[1])), window=1.0,
                   size=(int(env.track_rows), int(env.size[1])), follow=0.0)

    @property
    def rows(self) -> tuple[int, int]:
        return round(self.band[0] * SCREEN_HEIGHT), round(self.band[1] * SCREEN_HEIGHT)

    @property
    def width(self) -> int:
        return round(self.window * SCREEN_WIDTH)

    def left(self, cart_x: float) -> int:
        """First screen column of the window around a cart at world position ``cart_x``."""
        width = self.width
        centre = self.follow * cart_x * SCREEN_WIDTH / (2 * X_THRESHOLD) + SCREEN_WIDTH / 2.0
        return min(max(round(centre - width / 2), 0), SCREEN_WIDTH - width)  # scalar: no numpy


def crop_frame(frame: np.ndarray, cart_x: float, crop: CropWindow, gray: bool) -> np.ndarray:
    """Cut the window around the cart out of a full RGB frame and resize it (area average)."""
    top, bottom = crop.rows
    left = crop.left(cart_x)
    patch = frame[top:bottom, left : left + crop.width]
    if gray:
        patch = cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY)
    height, width = crop.size
    return cv2.resize(patch, (width, height), interpolation=cv2.INTER_AREA)


class FastPatchRenderer:
    """Draws the patch directly with anti-aliased OpenCV shapes at ``supersample`` x its size.

    The per-state work is a handful of scalar expressions and four OpenCV calls; everything
    that does not depend on the state is computed once here.
    """

    _SHIFT = 4  # fixed-point fraction bits for sub-pixel vertices
    # gfxdraw fills pixel p over [p, p + 1) and the frame is flipped: screen point (x, y) lands at
    # image coordinates (x - 0.5, SCREEN_HEIGHT - y - 0.5) in pixel-centre units
    _OFFSET = -0.5

    def __init__(
        self,
        crop: CropWindow,
        gray: bool,
        supersample: int = 4,
        x_steps: int = 4,
        angle_steps: int = 1000,
        memo_size: int = 16384,
    ) -> None:
        self.crop = crop
        self._x_steps, self._angle_steps = x_steps, angle_steps
        self._memo: dict[tuple[int, int], np.ndarray] = {}
        self._memo_size = memo_size
        self.shape = crop.size if gray else (*crop.size, 3)
        top, bottom = crop.rows
        height, width = crop.size
        self._size = (width, height)
        self._sx = supersample * width / crop.width
        self._sy = supersample * height / (bottom - top)
        self._one = 1 << self._SHIFT
        self._top = top
        self._supersample = supersample
        convert = _gray if gray else (lambda rgb: tuple(int(c) for c in rgb))
        self._cart, self._pole, self._axle = (convert(c) for c in (CART_RGB, POLE_RGB, AXLE_RGB))
        shape = (supersample * height, supersample * width) + (() if gray else (3,))
        self._background = np.full(shape, convert(BACKGROUND_RGB), np.uint8)
        # the 1-pixel track is thinner than a canvas pixel: blend it by its exact row coverage
        # (OpenCV's anti-aliasing draws at least one full pixel); it is the same in every patch
        track_top = (SCREEN_HEIGHT - CART_TOP_Y - 1 + self._OFFSET - top) * self._sy
        for row in range(int(np.floor(track_top)), int(np.ceil(track_top + self._sy))):
            if 0 <= row < shape[0]:
                cover = min(track_top + self._sy, row + 1) - max(track_top, row)
                background = self._background[row].astype(np.float64)
                blended = background * (1 - cover) + np.asarray(self._cart) * cover
                self._background[row] = np.round(blended).astype(np.uint8)
        self._scale = SCREEN_WIDTH / (2 * X_THRESHOLD)
        self._pole_length = self._scale * 2 * POLE_HALF_LENGTH
        self._base_patch = self._downsample(self._background)

    def __getstate__(self) -> dict:
        # the memo is a cache of pure results: checkpoints need not carry its ~60 MB
        return {**self.__dict__, "_memo": {}}

    def patch(self, env: gym.Env) -> np.ndarray:
        """The patch around the cart of ``env``'s current state."""
        return self.render(env.unwrapped.state)

    def render(self, state: np.ndarray) -> np.ndarray:
        """The patch of the screen around the cart for a CartPole state (a new array)."""
        cart_x = float(state[0]) * self._scale + SCREEN_WIDTH / 2.0
        # the window's left edge is a whole screen column: only the cart's position inside the
        # window and the pole angle change the patch
        key = (round((cart_x - self.crop.left(float(state[0]))) * self._x_steps),
               round(float(state[2]) * self._angle_steps))
        patch = self._memo.get(key)
        if patch is None:
            if len(self._memo) >= self._memo_size:
                self._memo.clear()
            patch = self._memo[key] = self.draw(key[0] / self._x_steps, key[1] / self._angle_steps)
        return patch.copy()

    def draw(self, cart_x: float, theta: float) -> np.ndarray:
        """Draw the patch of a cart at column ``cart_x`` of the window, its pole at ``theta``."""
        sx, sy, one, offset = self._sx, self._sy, self._one, self._OFFSET
        base_row = SCREEN_HEIGHT + offset - self._top

        def point(px: float, py: float) -> tuple[int, int]:
            return (round((px + offset) * sx * one), round((base_row - py) * sy * one))

        half_w, half_h = CART_WIDTH / 2, CART_HEIGHT / 2
        cart = [point(cart_x + dx, CART_TOP_Y + dy)
                for dx, dy in ((-half_w, -half_h), (-half_w, half_h), (half_w, half_h),
                               (half_w, -half_h))]
        half_pole, length = POLE_WIDTH / 2, self._pole_length
        cos, sin = math.cos(theta), math.sin(theta)
        axle_y = CART_TOP_Y + AXLE_OFFSET
        # gymnasium rotates the upright pole by -theta (clockwise for a positive angle)
        pole = [point(cart_x + px * cos + py * sin, axle_y - px * sin + py * cos)
                for px, py in ((-half_pole, -half_pole), (-half_pole, length - half_pole),
                               (half_pole, length - half_pole), (half_pole, -half_pole))]
        # gymnasium draws the axle at integer pixel coordinates (the window starts on one)
        centre = point(math.floor(cart_x), int(axle_y))
        radius = round(half_pole * sx * one)

        # Only the blocks under the cart and pole change: draw and downsample just those (whole
        # supersample blocks, so the area average is the same as over the full canvas).
        ss = self._supersample
        cols = [c for c, _ in cart + pole]
        rows = [r for _, r in cart + pole]
        col0 = max((min(cols) // one - 2) // ss * ss, 0)
        row0 = max((min(rows) // one - 2) // ss * ss, 0)
        col1 = min(-(-(max(cols) // one + 3) // ss) * ss, self._background.shape[1])
        row1 = min(-(-(max(rows) // one + 3) // ss) * ss, self._background.shape[0])
        patch = self._base_patch.copy()
        if col1 <= col0 or row1 <= row0:
            return patch  # cart and pole are outside the window
        canvas = self._background[row0:row1, col0:col1].copy()
        shift = np.array([col0 * one, row0 * one], np.int32)
        cv2.fillConvexPoly(canvas, np.array(cart, np.int32) - shift, self._cart, cv2.LINE_AA,
                           self._SHIFT)
        cv2.fillConvexPoly(canvas, np.array(pole, np.int32) - shift, self._pole, cv2.LINE_AA,
                           self._SHIFT)
        cv2.circle(canvas, (centre[0] - col0 * one, centre[1] - row0 * one), radius, self._axle,
                   -1, cv2.LINE_AA, self._SHIFT)
        patch[row0 // ss : row1 // ss, col0 // ss : col1 // ss] = self._downsample(canvas)
        return patch

    def _downsample(self, canvas: np.ndarray) -> np.ndarray:
        ss = self._supersample
        if ss == 1:
            return canvas
        size = (canvas.shape[1] // ss, canvas.shape[0] // ss)
        return cv2.resize(canvas, size, interpolation=cv2.INTER_AREA)


class StackedPatchRenderer:
    """The patches of several renderers of the same width, stacked top to bottom: e.g. the
    cart's patch above a coarse view of the whole track (``env.track_rows``)."""

    def __init__(self, renderers: list) -> None:
        widths = {renderer.shape[1:] for renderer in renderers}
        if len(widths) != 1:
            raise ValueError(f"stacked patches need one width (and colour depth), not {widths}")
        self._renderers = renderers
        self.shape = (sum(renderer.shape[0] for renderer in renderers), *widths.pop())

    def patch(self, env: gym.Env) -> np.ndarray:
        return np.concatenate([renderer.patch(env) for renderer in self._renderers], axis=0)


class PygamePatchRenderer:
    """gymnasium's own ``render()`` (the full 600x400 frame), then the crop and resize."""

    def __init__(self, crop: CropWindow, gray: bool) -> None:
        self.crop = crop
        self.gray = gray
        self.shape = crop.size if gray else (*crop.size, 3)

    def patch(self, env: gym.Env) -> np.ndarray:
        """The patch around the cart of ``env`` (made with ``render_mode="rgb_array"``)."""
        return crop_frame(env.render(), float(env.unwrapped.state[0]), self.crop, self.gray)
