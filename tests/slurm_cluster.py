"""A one-node SLURM cluster on this machine, for the tests that submit to a real scheduler.

``LocalSlurm`` writes a ``slurm.conf`` for this host (its cores and memory, no cgroups), starts
``munged`` (unless one answers already), a MariaDB server and ``slurmdbd`` for job accounting (so
``sacct``, which submitit polls for job states, works as on a real cluster), then ``slurmctld``
and ``slurmd``, each on its own port with its files in one directory; it waits until ``sinfo``
shows the node idle. Clients (``sbatch``, ``sacct``, submitit) find it through ``SLURM_CONF``,
which it sets. It needs the Debian packages listed in ``PACKAGES`` (``.ci/run`` installs them)
and root, as slurmd does. By hand::

    python tests/slurm_cluster.py [DIR]   # starts it, prints SLURM_CONF; Ctrl-C stops it
    python tests/slurm_cluster.py --stop [DIR]   # stops one left running (DIR: DEFAULT_DIR)

``session_cluster`` gives the processes of one test session (pytest-xdist workers) one cluster:
the first to ask starts it, and the session's end stops it (``stop_session_cluster``, called by
the controller in ``tests/conftest.py``). A cluster left by a killed session is stopped first.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pixel_dqn.tune.driver import locked

PACKAGES = "slurmctld slurmd slurmdbd slurm-client munge mariadb-server"
BINARIES = ("munged", "munge", "slurmctld", "slurmd", "slurmdbd", "sinfo", "sbatch", "srun",
            "sacct", "sacctmgr", "scancel", "squeue", "scontrol", "mariadbd",
            "mariadb-install-db", "mariadb")
DAEMONS = ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged")  # in the order they stop
DEFAULT_DIR = Path(tempfile.gettempdir()) / "pixel_dqn_slurm"
PORTS = {"slurmctld": 16817, "slurmd": 16818, "slurmdbd": 16819, "mariadb": 16820}
DATABASE_PASSWORD = "pixel-dqn-test-cluster"  # a throwaway database on 127.0.0.1 only

# A scheduler that answers within a test's patience: it schedules every second, keeps finished
# jobs 30 s, and starts a requeued job again 6 s after the requeue (cred_expire + 1; a real
# cluster's default of 120 s is what users see between a requeue and the restart).
SLURM_CONF = """\
ClusterName=pixeldqn
SlurmctldHost={host}(127.0.0.1)
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
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
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

    ``start``/``stop`` (or ``with``) run it; ``use`` only points ``SLURM_CONF`` at it.
    """

    def __init__(self, directory: Path = DEFAULT_DIR) -> None:
        self.dir = Path(directory)
        self.conf = self.dir / "slurm.conf"
        self.host = socket.gethostname()

    def __enter__(self) -> LocalSlurm:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def use(self) -> LocalSlurm:
        """Send this process's SLURM clients to this cluster."""
        os.environ["SLURM_CONF"] = str(self.conf)
        return self

    def running(self) -> bool:
        """Whether this directory's slurmctld runs."""
        return _daemon_pid(self.dir, "slurmctld") is not None

    def start(self) -> LocalSlurm:
        """Stop what a previous cluster in ``directory`` left running, write the configs, start
        every daemon and wait for the node; on failure, stop what started."""
        self.stop()
        busy = [f"{name} port {port}" for name, port in PORTS.items() if _in_use(port)]
        if busy:
            raise RuntimeError(
                f"local SLURM: {', '.join(busy)} already in use: another local cluster runs "
                f"(its directory: stop it with python tests/slurm_cluster.py --stop DIR; "
                f"the tests' is {DEFAULT_DIR})")
        shutil.rmtree(self.dir, ignore_errors=True)
        for sub in ("state", "spool"):
            (self.dir / sub).mkdir(parents=True)
        values = dict(host=self.host, cpus=len(os.sched_getaffinity(0)), memory_mb=_memory_mb(),
                      dir=self.dir, password=DATABASE_PASSWORD, **PORTS)
        self.conf.write_text(SLURM_CONF.format(**values))
        # slurmdbd reads slurmdbd.conf from the directory of $SLURM_CONF, and refuses one that
        # others can read (it holds the database password)
        dbd_conf = self.dir / "slurmdbd.conf"
        dbd_conf.write_text(SLURMDBD_CONF.format(**values))
        dbd_conf.chmod(0o600)
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
        """Cancel every job, then stop every daemon of this directory (by its pid file)."""
        if self.running():
            env = {**os.environ, "SLURM_CONF": str(self.conf)}
            # scontrol shutdown stops the daemons but leaves running jobs' processes behind
            _ok(["scancel", "--user=root", "--full"], env=env)
            deadline = time.monotonic() + 30
            while _out(["squeue", "-h"], env=env) and time.monotonic() < deadline:
                time.sleep(0.5)
            _ok(["scontrol", "shutdown"], env=env)
        for name in DAEMONS:
            pid = _daemon_pid(self.dir, name)
            if pid is not None:
                _stop(pid)

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
        # its pid file is in /run/munge; a link here lets stop() find it
        (self.dir / "munged.pid").symlink_to(run_dir / "munged.pid")

    def _start_database(self) -> None:
        data, sock = self.dir / "mariadb", self.dir / "mariadb.sock"
        _check([_binary("mariadb-install-db"), "--no-defaults", "--user=root",
                f"--datadir={data}", "--auth-root-authentication-method=socket",
                "--skip-test-db"], "mariadb-install-db")
        with open(self.dir / "mariadb.log", "w") as log:
            database = subprocess.Popen(
                [_binary("mariadbd"), "--no-defaults", "--user=root", f"--datadir={data}",
                 f"--socket={sock}", f"--port={PORTS['mariadb']}", "--bind-address=127.0.0.1",
                 f"--pid-file={self.dir / 'mariadbd.pid'}", "--skip-log-bin",
                 "--innodb-buffer-pool-size=64M"],
                stdout=log, stderr=log, start_new_session=True)
        client = [_binary("mariadb"), "--no-defaults", f"--socket={sock}", "-u", "root"]

        def answers() -> bool:
            if database.poll() is not None:
                raise RuntimeError(f"mariadbd exited: {_tail(self.dir / 'mariadb.log', 3)}")
            return _ok([*client, "-e", "SELECT 1"])

        self._wait(answers, "MariaDB answers", 60)
        _check([*client, "-e", f"CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY "
                               f"'{DATABASE_PASSWORD}'; GRANT ALL ON slurm_acct_db.* TO "
                               "'slurm'@'127.0.0.1';"], "creating the accounting user")

    def _wait(self, ready: Callable[[], bool], what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.3)
        logs = {name: _tail(self.dir / f"{name}.log")
                for name in ("mariadb", "slurmdbd", "slurmctld", "slurmd")}
        raise RuntimeError(f"local SLURM: waited {timeout_s:.0f} s for: {what}; logs end: {logs}")


def session_cluster(session: str, directory: Path = DEFAULT_DIR) -> LocalSlurm:
    """The cluster of test session ``session``: running already (started by another process of
    the session), or started now, in place of any a previous session left; under a lock."""
    cluster = LocalSlurm(directory)
    marker = directory / "session"
    directory.parent.mkdir(parents=True, exist_ok=True)
    with locked(directory.with_name(directory.name + ".lock")):
        ours = marker.is_file() and marker.read_text() == session
        if not (ours and cluster.running()):
            cluster.start()
            marker.write_text(session)
    return cluster.use()


def stop_session_cluster(session: str, directory: Path = DEFAULT_DIR) -> None:
    """Stop the cluster if test session ``session`` started it."""
    marker = directory / "session"
    if not marker.is_file():
        return  # no cluster started here (or SLURM is not installed)
    with locked(directory.with_name(directory.name + ".lock")):
        if marker.is_file() and marker.read_text() == session:
            LocalSlurm(directory).stop()
            marker.unlink()


def _in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _ok(command: list[str], env: dict | None = None) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=30, env=env).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _out(command: list[str], env: dict | None = None) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=30,
                              env=env).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _check(command: list[str], what: str) -> None:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"local SLURM: {what} failed: {proc.stderr.strip()[-500:]}")


def _tail(path: Path, lines: int = 5) -> list[str]:
    return path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []


def _daemon_pid(directory: Path, name: str) -> int | None:
    """The pid in ``<directory>/<name>.pid`` if that process runs and is ``name`` (a pid file
    outlives its daemon, and the kernel reuses pids)."""
    try:
        pid = int((directory / f"{name}.pid").read_text().strip())
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    command, state = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2]
    return pid if command == name[:15] and state != "Z" else None  # Z: ended, not yet reaped


def _stop(pid: int, timeout_s: float = 20) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended but not yet reaped by its parent, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if a != "--stop"]
    where = Path(arguments[0]) if arguments else DEFAULT_DIR
    if "--stop" in sys.argv:
        LocalSlurm(where).stop()
        sys.exit(0)
    reason = missing()
    if reason:
        sys.exit(f"error: {reason}")
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, lambda *_: sys.exit(0))  # leaves the with: stops the cluster
    with LocalSlurm(where) as slurm:
        print(f"export SLURM_CONF={slurm.conf}   # node {slurm.host} idle; Ctrl-C stops it",
              flush=True)
        while True:
            signal.pause()
