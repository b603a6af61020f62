"""A one-node SLURM cluster on this machine, for the tests that submit to a real scheduler.

``LocalSlurm`` writes a ``slurm.conf`` for this host (its cores and memory, no cgroups), starts
``munged`` (unless one answers already), a MariaDB server and ``slurmdbd`` for job accounting (so
``sacct``, which submitit polls for job states, works as on a real cluster), then ``slurmctld``
and ``slurmd``, each on its own port with its files in one directory; it waits until ``sinfo``
shows the node idle and stops what it started when it leaves. Clients (``sbatch``, ``sacct``,
submitit) find it through ``SLURM_CONF``, which it sets. It needs the Debian packages listed in
``PACKAGES`` (``.ci/run`` installs them) and root, as slurmd does. By hand::

    python tests/slurm_cluster.py /tmp/slurm    # starts it, prints SLURM_CONF; Ctrl-C stops it

``shared_cluster`` lets several processes (pytest-xdist workers) use one cluster: the first to
enter starts it, the last to leave stops it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PACKAGES = "slurmctld slurmd slurmdbd slurm-client munge mariadb-server"
BINARIES = ("munged", "munge", "slurmctld", "slurmd", "slurmdbd", "sinfo", "sbatch", "sacct",
            "scontrol", "mariadbd", "mariadb-install-db", "mariadb")
PORTS = {"slurmctld": 16817, "slurmd": 16818, "slurmdbd": 16819, "mariadb": 16820}
DATABASE_PASSWORD = "pixel-dqn-test-cluster"  # a throwaway database on 127.0.0.1 only

# A scheduler that answers within a test's patience: it schedules every second, keeps finished
# jobs 30 s, and lets a requeued job start again 5 s after it was requeued (cred_expire; a real
# cluster's default of 120 s is what users see between a requeue and the restart).
SLURM_CONF = """\
ClusterName=pixeldqn
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=5
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost={host}
AccountingStoragePort={slurmdbd}
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=30
SlurmctldPort={slurmctld}
SlurmdPort={slurmd}
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
NodeName={host} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""
SLURMDBD_CONF = """\
AuthType=auth/munge
DbdHost={host}
DbdPort={slurmdbd}
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={mariadb}
StorageUser=slurm
StoragePass={password}
StorageLoc=slurm_acct_db
PidFile={dir}/slurmdbd.pid
LogFile={dir}/slurmdbd.log
"""


def missing() -> str | None:
    """Why a local cluster cannot start here (one line), or None if it can."""
    absent = [name for name in BINARIES if _find(name) is None]
    if absent:
        return (f"SLURM is not installed ({', '.join(absent)} missing: apt-get install -y "
                f"{PACKAGES}; .ci/run does, and CI never skips these tests)")
    if os.geteuid() != 0:
        return "a local SLURM needs root (slurmd runs jobs as their users)"
    return None


def _find(name: str) -> str | None:
    found = shutil.which(name)
    if found is None and Path("/usr/sbin", name).exists():
        found = str(Path("/usr/sbin", name))
    return found


def _binary(name: str) -> str:
    found = _find(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found (apt-get install -y {PACKAGES})")
    return found


def _memory_mb() -> int:
    with open("/proc/meminfo") as f:
        total_kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    return total_kb // 1024 - 1024  # leave the system a GB


class LocalSlurm:
    """A one-node cluster with accounting, its files in ``directory`` (see the module docstring).

    ``start``/``stop`` (or ``with``) run it; ``use`` only points ``SLURM_CONF`` at a cluster
    another process started in the same directory.
    """

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.conf = self.dir / "slurm.conf"
        self.host = socket.gethostname()
        self._previous_conf = os.environ.get("SLURM_CONF")
        self._database: subprocess.Popen | None = None

    def __enter__(self) -> LocalSlurm:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def use(self) -> LocalSlurm:
        """Send this process's SLURM clients to the cluster in ``directory``."""
        os.environ["SLURM_CONF"] = str(self.conf)
        return self

    def start(self) -> LocalSlurm:
        """Write the configs, start every daemon, wait for the node; stop all on failure."""
        busy = [f"{name} port {port}" for name, port in PORTS.items() if _in_use(port)]
        if busy:
            raise RuntimeError(
                f"local SLURM: {', '.join(busy)} already in use: another local cluster runs "
                "(stop it: SLURM_CONF=<its dir>/slurm.conf scontrol shutdown, then end its "
                "slurmdbd and mariadbd)")
        for sub in ("state", "spool"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        values = dict(host=self.host, cpus=os.cpu_count() or 1, memory_mb=_memory_mb(),
                      dir=self.dir, password=DATABASE_PASSWORD, **PORTS)
        self.conf.write_text(SLURM_CONF.format(**values))
        dbd_conf = self.dir / "slurmdbd.conf"
        dbd_conf.write_text(SLURMDBD_CONF.format(**values))
        dbd_conf.chmod(0o600)  # slurmdbd refuses a config others can read (it holds a password)
        self.use()
        try:
            self._start_munge()
            self._start_database()
            self._daemon("slurmdbd")
            self._wait(lambda: _ok(["sacctmgr", "-n", "list", "cluster"]), "slurmdbd answers", 60)
            for daemon in ("slurmctld", "slurmd"):
                self._daemon(daemon, "-f", str(self.conf))
            self._wait(lambda: _out(["sinfo", "-h", "-N", "-o", "%T"]) == "idle",
                       "the node is idle", 60)
            self._wait(lambda: "pixeldqn" in _out(["sacctmgr", "-n", "-P", "list", "cluster"]),
                       "slurmctld registered with accounting", 60)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every daemon of this directory (by their pid files) and restore SLURM_CONF."""
        controller = _read_pid(self.dir / "slurmctld.pid")
        if controller is not None and _alive(controller):
            # the orderly way to stop slurmctld and slurmd (and end any job still running)
            _ok(["scontrol", "shutdown"])
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadb", "munged"):
            if name == "mariadb" and self._database is not None:
                self._database.terminate()  # our child: wait for it, leave no zombie
                self._database.wait(timeout=60)
                self._database = None
                continue
            pid = _read_pid(self.dir / f"{name}.pid")
            if pid is not None:
                _stop(pid)
        if self._previous_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = self._previous_conf

    def _daemon(self, name: str, *args: str) -> None:
        proc = subprocess.run([_binary(name), *args], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"{name} did not start: {proc.stderr.strip()[-500:]}")

    def _start_munge(self) -> None:
        if _ok(["munge", "-n"]):
            return  # a munged answers already (the system's): keep it, and leave it running
        run_dir = Path("/run/munge")
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(run_dir, "munge", "munge")
        proc = subprocess.run(["runuser", "-u", "munge", "--", _binary("munged")],
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"munged did not start: {proc.stderr.strip()[-500:]}")
        # its pid file is in /run/munge; link it here so stop() finds it
        os.symlink(run_dir / "munged.pid", self.dir / "munged.pid")

    def _start_database(self) -> None:
        data, sock = self.dir / "mariadb", self.dir / "mariadb.sock"
        subprocess.run([_binary("mariadb-install-db"), "--no-defaults", "--user=root",
                        f"--datadir={data}", "--auth-root-authentication-method=socket",
                        "--skip-test-db"], check=True, capture_output=True, timeout=120)
        log = open(self.dir / "mariadb.log", "w")  # noqa: SIM115 (the daemon keeps it)
        self._database = subprocess.Popen([_binary("mariadbd"), "--no-defaults", "--user=root",
                          f"--datadir={data}", f"--socket={sock}", f"--port={PORTS['mariadb']}",
                          "--bind-address=127.0.0.1", f"--pid-file={self.dir / 'mariadb.pid'}",
                          "--skip-log-bin", "--innodb-buffer-pool-size=64M"],
                         stdout=log, stderr=log, start_new_session=True)
        client = [_binary("mariadb"), "--no-defaults", f"--socket={sock}", "-u", "root"]
        def answers() -> bool:
            if self._database.poll() is not None:
                raise RuntimeError(f"mariadbd exited: {_tail(self.dir / 'mariadb.log', 3)}")
            return _ok([*client, "-e", "SELECT 1"])

        self._wait(answers, "MariaDB answers", 60)
        grant = (f"CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{DATABASE_PASSWORD}'; "
                 "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';")
        subprocess.run([*client, "-e", grant], check=True, capture_output=True, timeout=60)

    def _wait(self, ready, what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.3)
        logs = {name: _tail(self.dir / f"{name}.log")
                for name in ("mariadb", "slurmdbd", "slurmctld", "slurmd")}
        raise RuntimeError(f"local SLURM: waited {timeout_s:.0f} s for: {what}; logs end: {logs}")


@contextmanager
def shared_cluster(directory: Path) -> Iterator[LocalSlurm]:
    """One cluster for every process entering with the same ``directory``: the first to enter
    starts it, the last to leave stops it (a count in a file, under a lock)."""
    directory.mkdir(parents=True, exist_ok=True)
    cluster, users = LocalSlurm(directory), directory / "users"
    with _locked(directory / "users.lock"):
        count = int(users.read_text()) if users.exists() else 0
        cluster.start() if count == 0 else cluster.use()
        users.write_text(str(count + 1))
    try:
        yield cluster
    finally:
        with _locked(directory / "users.lock"):
            count = int(users.read_text()) - 1
            users.write_text(str(count))
            if count == 0:
                cluster.stop()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _ok(command: list[str]) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _out(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _tail(path: Path, lines: int = 5) -> list[str]:
    return path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _stop(pid: int, timeout_s: float = 20) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended but not yet reaped by its parent, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


if __name__ == "__main__":
    reason = missing()
    if reason:
        sys.exit(f"error: {reason}")
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, lambda *_: sys.exit(0))  # leaves the with: stops the cluster
    with LocalSlurm(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/pixel_dqn_slurm")) as slurm:
        print(f"export SLURM_CONF={slurm.conf}   # node {slurm.host} idle; Ctrl-C stops it",
              flush=True)
        while True:
            signal.pause()
