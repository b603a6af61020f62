"""SIGTERM, SIGINT and the launchers' preemption signal as a request to checkpoint and stop:
for a training run, and for a tuning study's driver and workers."""

from __future__ import annotations

import signal
import sys
import threading
import time


class StopSignals:
    """Turns SIGTERM and SIGINT into a request to checkpoint and stop at the end of the step.

    SIGUSR2 is submitit's preemption and time-limit signal: when a launcher handles it (the
    submitit launchers, local or SLURM), the run checkpoints at the end of the step first and
    then hands the signal on to that handler, which requeues the job; the requeued job resumes
    from this checkpoint. A second signal while one is pending stops at once
    (KeyboardInterrupt) unless ``interrupt_on_repeat`` is off. Outside the main thread (where
    handlers cannot be installed) signals keep their default behaviour.

    ``announce`` replaces the line printed (to stderr) when a stop is requested: a tuning study
    says that its trials checkpoint and that the same command continues.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)
    LAUNCHER_SIGNALS = (signal.SIGUSR2,)

    def __init__(self, announce: str | None = None, interrupt_on_repeat: bool = True) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}
        self._announce = announce
        self._interrupt_on_repeat = interrupt_on_repeat

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
            for signum in self.LAUNCHER_SIGNALS:
                if callable(signal.getsignal(signum)):
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def install(self) -> StopSignals:
        """Handle the signals for the rest of the process (a study's driver or worker)."""
        return self.__enter__()

    def wait(self, seconds: float, step: float) -> None:
        """Sleep ``seconds`` unless a stop is requested first (checked every ``step``)."""
        end = time.monotonic() + seconds
        while self.signum is None and time.monotonic() < end:
            time.sleep(step)

    def hand_on(self, step: int) -> None:
        """Give a pending launcher signal to the launcher's handler (it may exit)."""
        if self.signum in self.LAUNCHER_SIGNALS:
            print(f"{signal.Signals(self.signum).name} handed on to the launcher at env step "
                  f"{step}", flush=True)
            handler = self._previous[self.signum]
            signal.signal(self.signum, handler)
            handler(self.signum, None)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is not None:
            if self._interrupt_on_repeat:
                raise KeyboardInterrupt
            return
        self.signum = signum
        name = signal.Signals(signum).name
        if self._announce is not None:
            print(f"{name} received: {self._announce}", file=sys.stderr, flush=True)
            return
        then = ("then the launcher requeues the job" if signum in self.LAUNCHER_SIGNALS else
                "send it again to stop at once")
        print(f"\n{name} received: checkpointing at the end of this step ({then})", flush=True)
