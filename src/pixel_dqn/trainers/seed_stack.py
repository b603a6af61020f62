"""Many seeds of one DQN config in one process: ``train_seed_stack(cfgs, run_dirs)``.

Each seed is an ordinary run (a ``Run`` and a ``DQNTrainer`` of its own: its envs, replay,
random streams, checkpoints, metrics, periodic and final evaluations, eval.json, model.keras),
and the seeds step in lockstep: one graph call chooses the greedy actions of every seed's envs
and one graph call trains every seed whose training phase is due
(``pixel_dqn.agents.seed_stack``). Everything else of a seed runs the single-run code.

A seed's run differs from the same seed trained alone by float rounding only (its ops are
batched with the other seeds'), so the two do not repeat each other bit for bit; a seed stack
repeats itself bit for bit, and each seed resumes from its own checkpoints after a kill.
"""

from __future__ import annotations

import contextlib
import time
from functools import partial
from io import StringIO
from pathlib import Path

import keras
import numpy as np

from pixel_dqn.agents.dqn import exploration_draws
from pixel_dqn.agents.seed_stack import SeedStackAgent
from pixel_dqn.config import Config
from pixel_dqn.evaluation import EvalResult
from pixel_dqn.metrics import Progress
from pixel_dqn.networks import build_network, greedy_policy
from pixel_dqn.replay import Batch
from pixel_dqn.run import Run
from pixel_dqn.run_state import TrainingInterrupted
from pixel_dqn.seed_groups import check_stackable
from pixel_dqn.stop_signals import StopSignals
from pixel_dqn.trainers.dqn import DQNTrainer, total_gradient_steps


class SeedView:
    """One seed of a ``SeedStackAgent`` with the agent interface ``DQNTrainer`` evaluates and
    checkpoints through: Keras copies of its online (and averaged) network, refreshed from the
    stack when it has trained since, and its slice of the stack's state."""

    def __init__(self, stack: SeedStackAgent, index: int, build: partial) -> None:
        self.stack, self.index = stack, index
        self.online = build()
        self.averaged: keras.Model | None = build() if stack.averaged is not None else None
        self._copied_version = -1
        self._greedy = greedy_policy(self.online)
        self._greedy_eval = greedy_policy(self.averaged or self.online)

    @property
    def evaluation_network(self) -> keras.Model:
        self._refresh()
        return self.averaged if self.averaged is not None else self.online

    def greedy_actions(self, obs: np.ndarray) -> np.ndarray:
        self._refresh()
        return self._greedy_eval(obs)

    def online_greedy_actions(self, obs: np.ndarray) -> np.ndarray:
        self._refresh()
        return self._greedy(obs)

    def state_dict(self) -> dict[str, np.ndarray]:
        return self.stack.seed_state(self.index)

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        self.stack.load_seed_state(self.index, arrays)
        self._copied_version = -1

    def _refresh(self) -> None:
        if self._copied_version == self.stack.version:
            return
        self.online.set_weights(self.stack.seed_weights(self.index))
        if self.averaged is not None:
            self.averaged.set_weights(self.stack.seed_weights(self.index, "averaged"))
        self._copied_version = self.stack.version


class StackedSeed(DQNTrainer):
    """A ``DQNTrainer`` driven by a seed stack: the stack runs the loop, this seed its steps.

    One difference from a single run: a training phase falls due only on a tick of the
    seed's vector env, every ``train_freq / num_envs`` vector steps (the phase counts are
    unchanged: a phase due in between waits, at most that many vector steps). Otherwise the
    seeds drift apart (an env's reset step stores no transition, so each seed's phases come
    at their own vector steps) and a stacked update would train a few seeds at the cost of all.
    A tick depends on the seed's own step count only: a resumed seed keeps its schedule.
    """

    def progress_stream(self):
        return StringIO()  # the stack shows the progress of all its seeds

    def phases_due(self) -> int:
        tick = max(self.hparams.train_freq // self.envs.num_envs, 1)
        if self.state.vector_steps % tick:
            return 0
        return super().phases_due()


def train_seed_stack(cfgs: list[Config], run_dirs: list[Path]) -> list[EvalResult]:
    """Train one run per config (equal but for ``seed``) in ``run_dirs``, as one program.

    Each run directory ends as a single run's would, and the same call resumes every seed from
    its newest complete checkpoint. Returns each seed's final evaluation.
    """
    check_stackable(cfgs)
    with contextlib.ExitStack() as resources:
        runs, networks = [], []
        for cfg, run_dir in zip(cfgs, run_dirs, strict=True):
            # entering a run seeds the initialisers: seed s starts from its single run's weights
            run = resources.enter_context(Run(cfg, run_dir, cfg.env))
            runs.append(run)
            networks.append(_network_builder(cfg, run)())
        stack = SeedStackAgent(networks, cfgs[0].trainer, total_gradient_steps(cfgs[0]))
        seeds = [StackedSeed(cfg, run, SeedView(stack, i, _network_builder(cfg, run)))
                 for i, (cfg, run) in enumerate(zip(cfgs, runs, strict=True))]
        return SeedStackLoop(stack, seeds).train()


def _network_builder(cfg: Config, run: Run) -> partial:
    envs = run.envs
    return partial(build_network, cfg.model, envs.single_observation_space.shape,
                   int(envs.single_action_space.n))


class SeedStackLoop:
    """The lockstep loop over a stack's seeds: act for all, step each, train all that are due."""

    def __init__(self, stack: SeedStackAgent, seeds: list[StackedSeed]) -> None:
        self.stack, self.seeds = stack, seeds
        cfg = seeds[0].cfg
        self.progress = Progress(sum(seed.progress_total() for seed in seeds),
                                 cfg.progress_interval_s)

    def train(self) -> list[EvalResult]:
        results: dict[int, EvalResult] = {}
        try:
            for seed in self.seeds:
                checkpoint = seed.run.checkpoint
                if checkpoint is None:
                    seed.start()
                else:
                    seed.restore(checkpoint)
                    print(f"{seed.run_dir.name}: resuming from {checkpoint.path} "
                          f"(env step {checkpoint.step})", flush=True)
                seed.begin_session()
            with StopSignals() as stop:
                self.loop(stop, results)
        finally:
            self.progress.close()
        return [results[i] for i in range(len(self.seeds))]

    def loop(self, stop: StopSignals, results: dict[int, EvalResult]) -> None:
        seeds = self.seeds
        session_start = time.perf_counter()
        first_steps = sum(seed.state.step for seed in seeds)
        while True:
            for i, seed in enumerate(seeds):  # also a seed resumed at the end of its budget
                if i not in results and not seed.budget_left():
                    results[i] = seed.finish()
            playing = [i for i in range(len(seeds)) if i not in results]
            if not playing:
                self.progress.show(sum(seed.state.step for seed in seeds),
                                   {"seeds": "all finished"})
                break
            epsilons = {i: seeds[i].epsilon() for i in playing}
            self.act_and_play(playing, epsilons)
            self.train_due(playing)
            for i in playing:
                seeds[i].evaluate_if_due()
            self.checkpoint_or_stop(playing, stop)
            position = sum(seed.state.step for seed in seeds)
            if self.progress.due():
                rate = (position - first_steps) / (time.perf_counter() - session_start)
                self.progress.show(position, {
                    "seeds": f"{len(seeds) - len(results)} training",
                    "steps/s": f"{rate:.0f}",
                    "eps": f"{min(epsilons.values(), default=0.0):.2f}"})

    def act_and_play(self, playing: list[int], epsilons: dict[int, float]) -> None:
        """Epsilon-greedy actions for every playing seed (one graph call for the greedy ones,
        each seed drawing from its own stream as a single run does), then one env step each."""
        seeds = self.seeds
        start = time.perf_counter()
        draws = {i: exploration_draws(seeds[i].envs.num_envs, epsilons[i], seeds[i].rng,
                                      self.stack.num_actions) for i in playing}
        actions = {i: random for i, (_, random) in draws.items()}
        if any(not explore.all() for explore, _ in draws.values()):
            greedy = self.stack.greedy_actions(np.stack([seed.state.obs for seed in seeds]))
            actions = {i: np.where(explore, random, greedy[i]).astype(np.int32)
                       for i, (explore, random) in draws.items()}
        _share(seeds, playing, "act", time.perf_counter() - start)
        for i in playing:
            seeds[i].play(actions[i], epsilons[i])

    def train_due(self, playing: list[int]) -> None:
        """One stacked update of every seed whose training phase is due."""
        seeds, stack = self.seeds, self.stack
        due = {i: phases for i in playing if (phases := seeds[i].phases_due())}
        if not due:
            return
        sampled = {i: seeds[i].sample_phase(phases) for i, phases in due.items()}
        start = time.perf_counter()
        steps = {i: len(batches.actions) for i, (batches, _) in sampled.items()}
        active = np.zeros((len(seeds), max(steps.values())), bool)
        sync = np.zeros(len(seeds), bool)
        for i, (_, sync_i) in sampled.items():
            active[i, :steps[i]] = True
            sync[i] = sync_i
        stacked = _stack_batches({i: batches for i, (batches, _) in sampled.items()},
                                 len(seeds), active.shape[1])
        loss, mean_q, td_errors, weights_sum = stack.update(stacked, active, sync)
        _share(seeds, list(due), "train_step", time.perf_counter() - start)
        for i, (batches, _) in sampled.items():
            metrics = {"loss": float(loss[i]), "mean_q": float(mean_q[i])}
            seeds[i].learned(batches, metrics, float(weights_sum[i]), td_errors[i, :steps[i]])

    def checkpoint_or_stop(self, playing: list[int], stop: StopSignals) -> None:
        """Each seed's due checkpoint; on a stop signal, every seed's, then stop."""
        paths = [self.seeds[i].checkpoint_if_due(stop) for i in playing]
        if stop.signum is None:
            return
        step = min(self.seeds[i].state.step for i in playing)
        stop.hand_on(step)  # a launcher's own handler (submitit's requeue) exits here
        raise TrainingInterrupted(stop.signum, step, paths[0] if paths else None)


def _share(seeds: list[StackedSeed], among: list[int], phase: str, seconds: float) -> None:
    """Book a stacked call's time to the seeds it served, in equal parts."""
    for i in among:
        seeds[i].timer.seconds[phase] += seconds / len(among)


def _stack_batches(batches: dict[int, Batch], seeds: int, steps: int) -> Batch:
    """Seeds' batches ``(steps_i, batch, ...)`` as one ``(seeds, steps, batch, ...)`` batch,
    zero where a seed has no step (the update masks those out)."""
    first = next(iter(batches.values()))
    fields = []
    for name, example in zip(Batch._fields, first, strict=True):
        if name == "indices":
            fields.append(None)
            continue
        out = np.zeros((seeds, steps, *example.shape[1:]), example.dtype)
        for i, batch in batches.items():
            value = getattr(batch, name)
            out[i, :len(value)] = value
        fields.append(out)
    return Batch(*fields)
