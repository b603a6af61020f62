"""Experience replay that stores each frame once, with n-step returns and prioritized sampling.

The buffer keeps, per env, the stream of observations the env produced: one slot per env step
(the newest frame of the next observation, with the action, reward and flags that led to it)
plus one slot per episode start (the reset frame). An observation is rebuilt from its slot and
the ``history - 1`` slots before it, clamped at the episode's first slot, exactly as
``PixelObservation`` refills its history on reset. A transition therefore costs one frame, not
two stacks: 40x90 gray patches take ~3.6 kB per env step whatever the stack depth.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from pixel_dqn.sum_tree import SumTree


class Batch(NamedTuple):
    """Transitions stacked along the first axis (or the first two for fused updates)."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    """The n-step discounted return ``sum_j gamma^j r_{t+j}`` (the reward when n = 1)."""
    next_obs: np.ndarray
    """The observation the return bootstraps from (n steps later, or where the episode ended)."""
    terminated: np.ndarray
    """1 when the return reached a true terminal (no bootstrap); a truncation bootstraps."""
    discounts: np.ndarray
    """``gamma^m`` for the m <= n steps the return covers: the bootstrap's discount."""
    weights: np.ndarray
    """Importance-sampling weights (all ones for uniform sampling)."""
    indices: np.ndarray
    """Where each transition is stored, for ``update_priorities``."""


class ReplayBuffer:
    """Per-env frame streams in fixed-capacity rings; uniform or proportional prioritized sampling.

    ``history``: observations are stacks of that many frames along their first axis (pixels),
    stored one frame per slot; ``None``: each observation is stored whole (the 4-float state).
    ``terminated`` is stored apart from ``truncated``: a time-limit truncation ends the n-step
    sum but still bootstraps.
    With ``prioritized`` (Schaul et al. 2016, proportional): new transitions get the largest
    priority seen, ``update_priorities`` sets ``(|td error| + eps) ** alpha``, and samples carry
    weights ``(N * P(i)) ** -beta`` divided by the batch's largest.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype,
        rng: np.random.Generator,
        *,
        num_envs: int,
        history: int | None,
        n_step: int,
        gamma: float,
        prioritized: bool,
        alpha: float,
        priority_eps: float,
    ) -> None:
        if n_step < 1:
            raise ValueError(f"n_step must be >= 1, got {n_step}")
        self.capacity = capacity
        self.num_envs = num_envs
        self.n_step = n_step
        self._gamma = gamma
        self._rng = rng
        self._history = history
        self._slots = math.ceil(capacity / num_envs)  # per env
        frame_shape = tuple(obs_shape[1:]) if history is not None else tuple(obs_shape)
        shape = (num_envs, self._slots)
        self._frames = np.zeros((*shape, *frame_shape), dtype=obs_dtype)
        self._actions = np.zeros(shape, np.int32)
        self._rewards = np.zeros(shape, np.float32)
        self._terminated = np.zeros(shape, np.bool_)
        self._first = np.zeros(shape, np.bool_)  # a reset frame: no transition leads to it
        self._start = np.zeros(shape, np.int64)  # the slot where the episode began
        self._written = np.zeros(num_envs, np.int64)  # slots written so far, per env
        self._episode_start = np.full(num_envs, -1, np.int64)
        self._transitions = 0  # stored slots that are not reset frames (kept, not recounted)
        self._tree = SumTree(num_envs * self._slots) if prioritized else None
        self._alpha = alpha
        self._priority_eps = priority_eps
        self._max_priority = 1.0

    def __len__(self) -> int:
        """Transitions that can be sampled (slots holding a reset frame do not count)."""
        return self._transitions

    @property
    def nbytes(self) -> int:
        """Bytes held by the preallocated arrays (the sum tree's too)."""
        arrays = (self._frames, self._actions, self._rewards, self._terminated, self._first,
                  self._start)
        tree = self._tree._nodes.nbytes if self._tree is not None else 0
        return sum(a.nbytes for a in arrays) + tree

    @property
    def bytes_per_step(self) -> float:
        """Bytes of storage per env step held (an episode start takes one slot more)."""
        return self.nbytes / (self.num_envs * self._slots)

    _SLOT_ARRAYS = ("frames", "actions", "rewards", "terminated", "first", "start")

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict]:
        """Everything needed to continue exactly: slot arrays (the written part) and counters.

        Returns ``(arrays, info)``: numpy arrays, and small picklable values (the RNG state).
        """
        used = int(min(self._written.max(), self._slots))
        arrays = {name: getattr(self, f"_{name}")[:, :used] for name in self._SLOT_ARRAYS}
        arrays["written"] = self._written
        arrays["episode_start"] = self._episode_start
        if self._tree is not None:
            arrays["priorities"] = self._tree.get(np.arange(self._tree.size))
        info = {"transitions": self._transitions, "max_priority": self._max_priority,
                "rng": self._rng.bit_generator.state, "slots": self._slots}
        return arrays, info

    def load_state_dict(self, arrays: dict[str, np.ndarray], info: dict) -> None:
        """Restore a ``state_dict`` taken from a buffer built with the same arguments."""
        if info["slots"] != self._slots:
            raise ValueError(f"replay has {self._slots} slots per env, the state {info['slots']}")
        for name in self._SLOT_ARRAYS:
            saved = arrays[name]
            getattr(self, f"_{name}")[:, : saved.shape[1]] = saved
        self._written[:] = arrays["written"]
        self._episode_start[:] = arrays["episode_start"]
        if self._tree is not None:
            self._tree.update(np.arange(self._tree.size), arrays["priorities"])
        self._transitions = int(info["transitions"])
        self._max_priority = float(info["max_priority"])
        self._rng.bit_generator.state = info["rng"]

    def start_episodes(self, env_ids: np.ndarray, obs: np.ndarray) -> None:
        """Begin new episodes in envs ``env_ids`` with their first observations."""
        env_ids = np.asarray(env_ids, np.int64)
        if env_ids.size == 0:
            return
        t = self._written[env_ids]
        self._write(env_ids, t, obs, first=True)
        self._episode_start[env_ids] = t

    def add(
        self,
        env_ids: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
    ) -> None:
        """Append one transition per env in ``env_ids`` (distinct) to its episode."""
        env_ids = np.asarray(env_ids, np.int64)
        if env_ids.size == 0:
            return
        if np.any(self._episode_start[env_ids] < 0):
            raise RuntimeError("add() before start_episodes() for these envs")
        t = self._written[env_ids]
        pos = t % self._slots
        self._actions[env_ids, pos] = actions
        self._rewards[env_ids, pos] = rewards
        self._terminated[env_ids, pos] = terminated
        self._write(env_ids, t, next_obs, first=False)

    def _write(self, env_ids: np.ndarray, t: np.ndarray, obs: np.ndarray, first: bool) -> None:
        pos = t % self._slots
        overwritten = (t >= self._slots) & ~self._first[env_ids, pos]
        self._transitions += (0 if first else len(env_ids)) - int(overwritten.sum())
        self._frames[env_ids, pos] = obs[:, -1] if self._history is not None else obs
        self._first[env_ids, pos] = first
        self._start[env_ids, pos] = t if first else self._episode_start[env_ids]
        self._written[env_ids] += 1
        if self._tree is not None:
            self._tree.update(env_ids * self._slots + pos, 0.0 if first else self._max_priority)

    def sample(
        self, batch_size: int, num_batches: int | None = None, beta: float = 1.0
    ) -> Batch:
        """Sample transitions (with replacement); ``beta`` is the importance-weight exponent.

        With ``num_batches`` the arrays get a leading axis of that length, for fused updates.
        """
        if len(self) == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        count = batch_size * (num_batches or 1)
        if self._tree is None:
            env_ids, t = self._sample_uniform(count)
            weights = np.ones(count, np.float32)
        else:
            env_ids, t, weights = self._sample_prioritized(count, batch_size, beta)
        batch = self._gather(env_ids, t, weights)
        if num_batches is None:
            return batch
        return Batch(*(a.reshape(num_batches, batch_size, *a.shape[1:]) for a in batch))

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """Set the sampled transitions' priorities from their new TD errors."""
        if self._tree is None:
            return
        priorities = (np.abs(np.ravel(td_errors)) + self._priority_eps) ** self._alpha
        self._tree.update(np.ravel(indices), priorities)
        self._max_priority = max(self._max_priority, float(priorities.max()))

    def _valid(self, env_ids: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Slots holding a transition whose observation's frames are all still stored."""
        oldest = self._written[env_ids] - self._slots
        pos = t % self._slots
        needed = np.maximum(self._start[env_ids, pos], t - (self._history or 1))
        return (t >= oldest) & (t < self._written[env_ids]) & ~self._first[env_ids, pos] & (
            needed >= oldest)

    def _sample_uniform(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        env_ids = np.empty(0, np.int64)
        t = np.empty(0, np.int64)
        while len(env_ids) < count:  # a few slots are not transitions: draw again for those
            e = self._rng.integers(0, self.num_envs, size=count)
            live = np.minimum(self._written[e], self._slots)
            candidates = self._written[e] - 1 - (self._rng.random(count) * live).astype(np.int64)
            ok = (live > 0) & self._valid(e, candidates)
            env_ids = np.concatenate([env_ids, e[ok]])
            t = np.concatenate([t, candidates[ok]])
        return env_ids[:count], t[:count]

    def _sample_prioritized(
        self, count: int, batch_size: int, beta: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        tree = self._tree
        assert tree is not None
        leaves = np.concatenate([tree.sample(batch_size, self._rng)
                                 for _ in range(count // batch_size)])
        while True:
            env_ids, pos = np.divmod(leaves, self._slots)
            last = self._written[env_ids] - 1
            t = last - (last - pos) % self._slots  # the newest slot stored at that position
            bad = ~self._valid(env_ids, t)
            if not bad.any():
                break
            # its oldest frames were overwritten: never sample it again, draw replacements
            tree.update(leaves[bad], np.zeros(bad.sum()))
            leaves[bad] = tree.find(self._rng.random(bad.sum()) * tree.total)
        probabilities = tree.get(leaves) / tree.total
        weights = (len(self) * probabilities) ** -beta
        weights = weights.reshape(-1, batch_size) / weights.reshape(-1, batch_size).max(
            axis=1, keepdims=True)
        return env_ids, t, weights.ravel().astype(np.float32)

    def _observations(self, env_ids: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The observation whose newest frame is in slot ``t``, frames oldest first."""
        if self._history is None:
            return self._frames[env_ids, t % self._slots]
        offsets = np.arange(1 - self._history, 1)
        times = np.maximum(t[:, None] + offsets, self._start[env_ids, t % self._slots][:, None])
        return self._frames[env_ids[:, None], times % self._slots]

    def _gather(self, env_ids: np.ndarray, t: np.ndarray, weights: np.ndarray) -> Batch:
        # the transition in slot t left the observation of slot t - 1; its n-step return runs
        # over slots t .. t + m - 1, stopping where the episode ended or the stream does
        steps = t[:, None] + np.arange(self.n_step)
        pos = steps % self._slots
        follows = (steps < self._written[env_ids][:, None]) & ~self._first[env_ids[:, None], pos]
        follows[:, 0] = True
        ended = self._terminated[env_ids[:, None], pos]  # truncations end at a reset slot
        alive = np.cumprod(follows & np.concatenate(
            [np.ones((len(t), 1), bool), ~ended[:, :-1]], axis=1), axis=1).astype(bool)
        m = alive.sum(axis=1)
        discounts = self._gamma ** np.arange(self.n_step)
        rewards = (self._rewards[env_ids[:, None], pos] * alive * discounts).sum(axis=1)
        last = t + m - 1
        return Batch(
            obs=self._observations(env_ids, t - 1),
            actions=self._actions[env_ids, t % self._slots],
            rewards=rewards.astype(np.float32),
            next_obs=self._observations(env_ids, last),
            terminated=self._terminated[env_ids, last % self._slots].astype(np.float32),
            discounts=(self._gamma ** m).astype(np.float32),
            weights=weights,
            indices=env_ids * self._slots + t % self._slots,
        )
