"""A real single-node SLURM cluster on 127.0.0.1 for tests: munged, slurmctld, slurmd.

Needs Debian's `slurm-wlm` and `munge` (`.ci/run` installs them). No systemd: the daemons run in
the foreground under setsid with their own pid, log and state files in one folder, and are
stopped by pid. No slurmdbd: the executor plugin is told to poll `squeue` (MinJobAge=300 keeps
finished jobs visible to it).

The config is written to /etc/slurm/slurm.conf (any earlier one is put back on stop), not only
pointed to by SLURM_CONF: snakemake's slurm-jobstep plugin strips SLURM_* variables before its
nested `srun`, which then looks in the default place.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

CONF = """\
ClusterName=omicslake
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.socket.2
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MinJobAge=300
KillWait=2
OverTimeLimit=0
MailProg=/bin/true
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
SlurmdParameters=config_overrides
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName=main Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


SYSTEM_CONF = Path("/etc/slurm/slurm.conf")


def available() -> bool:
    return all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "munged", "sbatch", "squeue"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlurmCluster:
    def __init__(self, root: Path, cpus: int = 2, memory_mb: int = 8000):
        self.root, self.processes = root, []
        for sub in ("munge", "state", "spool"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(root / "munge", 0o700)
        host = socket.gethostname().split(".")[0]
        self.conf = SYSTEM_CONF
        self.text = CONF.format(
            host=host, ctld_port=free_port(), d_port=free_port(), root=root, cpus=cpus, memory=memory_mb
        )
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def start(self, timeout: float = 60) -> SlurmCluster:
        if SYSTEM_CONF.exists() and not (self.root / "slurm.conf.saved").exists():
            shutil.copy2(SYSTEM_CONF, self.root / "slurm.conf.saved")
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SYSTEM_CONF.write_text(self.text)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        munge = self.root / "munge"
        subprocess.run(
            [
                "munged",
                "--force",
                f"--key-file={key}",
                f"--socket={munge}/munge.socket.2",
                f"--pid-file={munge}/munged.pid",
                f"--log-file={munge}/munged.log",
                f"--seed-file={munge}/munged.seed",
            ],
            check=True,
            env=self.env,
        )
        for daemon in (["slurmctld", "-D", "-i"], ["slurmd", "-D"]):
            log = open(self.root / f"{daemon[0]}.out", "w")  # noqa: SIM115 (kept open while it runs)
            self.processes.append(
                subprocess.Popen(
                    [*daemon, "-f", str(self.conf)],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], env=self.env, capture_output=True, text=True)
            if state.stdout.strip() == "idle":
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"SLURM node not idle after {timeout} s: {state.stdout}{state.stderr}\n{self.logs()}")

    def jobs(self) -> list[dict]:
        """Every job slurmctld still knows (MinJobAge=300): id, name, state, comment (the rule)."""
        out = subprocess.run(
            ["squeue", "-h", "-t", "all", "-o", "%i|%j|%T|%k"], env=self.env, capture_output=True, text=True, check=True
        ).stdout
        fields = ("id", "name", "state", "comment")
        return [dict(zip(fields, line.split("|", 3), strict=True)) for line in out.splitlines()]

    def logs(self) -> str:
        return "\n".join(p.read_text()[-2000:] for p in self.root.glob("*.log"))

    def stop(self) -> None:
        for process in self.processes:
            with contextlib_suppress():
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        pid_file = self.root / "munge" / "munged.pid"
        if pid_file.exists():
            with contextlib_suppress():
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
        saved = self.root / "slurm.conf.saved"
        if saved.exists():
            shutil.copy2(saved, SYSTEM_CONF)
        else:
            SYSTEM_CONF.unlink(missing_ok=True)


def contextlib_suppress():
    import contextlib

    return contextlib.suppress(ProcessLookupError)
