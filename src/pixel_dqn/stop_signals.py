"""SIGTERM, SIGINT and the launchers' preemption signal as a request to checkpoint and stop."""

from __future__ import annotations

import signal
import threading


class StopSignals:
    """Turns SIGTERM and SIGINT into a request to checkpoint and stop at the end of the step.

    SIGUSR2 is submitit's preemption and time-limit signal: when a launcher handles it (the
    submitit launchers, local or SLURM), the run checkpoints at the end of the step first and
    then hands the signal on to that handler, which requeues the job; the requeued job resumes
    from this checkpoint. A second signal while one is pending stops at once
    (KeyboardInterrupt). Outside the main thread (where handlers cannot be installed) signals
    keep their default behaviour.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)
    LAUNCHER_SIGNALS = (signal.SIGUSR2,)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

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
            raise KeyboardInterrupt
        self.signum = signum
        then = ("then the launcher requeues the job" if signum in self.LAUNCHER_SIGNALS else
                "send it again to stop at once")
        print(f"\n{signal.Signals(signum).name} received: checkpointing at the end of this step "
              f"({then})", flush=True)
