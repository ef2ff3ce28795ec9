"""Sweeps on a real SLURM: a one-node cluster on this machine (Debian's slurm-wlm and munge, installed
by .ci/run, never by a test), started with its configuration, state and logs in a temporary folder:
munged, slurmctld and slurmd, no systemd, no cgroups, no accounting. ``sweep.py --executor slurm``
submits a job array to it; a run cancelled with scancel is finished by running the sweep again.

Without SLURM, or when the daemons do not start, these tests skip with one line; with CI=true they fail
with the daemon's own last log line instead.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import MODELS, REPO, read_metrics, unavailable

pytestmark = pytest.mark.slow
TINY = ["--models", "ae32,vae32", "--seeds", "0", "--script-args", "--epochs 1 --train-subset 600 --test-subset 500"]


def _missing():
    """None when SLURM's daemons and munge are installed, else the line that says how to install them
    (.ci/run does; no test installs packages)."""
    if shutil.which("slurmctld") and shutil.which("slurmd") and shutil.which("munged"):
        return None
    return "slurm-wlm and munge are not installed (Debian packages; .ci/run installs them, docs/testing.md)"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _last_line(path):
    lines = Path(path).read_text(errors="replace").strip().splitlines() if Path(path).exists() else []
    return lines[-1] if lines else f"{Path(path).name} is empty"


CONF = """ClusterName=latentlab
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={dir}/munge.socket
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SlurmdTimeout=30
NodeName={host} CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A one-node SLURM cluster for this test session: yields the environment that points at it."""
    reason = _missing()
    if reason:
        unavailable(reason, "SLURM")
    root = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (root / sub).mkdir()
    host = socket.gethostname().split(".")[0]
    conf = root / "slurm.conf"
    conf.write_text(CONF.format(host=host, dir=root, cpus=os.cpu_count() or 1, ctld_port=_free_port(),
                                d_port=_free_port()))
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    munged = [shutil.which("munged"), "--force", "--foreground", f"--socket={root}/munge.socket",
              f"--key-file={key}", f"--pid-file={root}/munged.pid", f"--log-file={root}/munged.log",
              f"--seed-file={root}/munged.seed"]
    daemons = [subprocess.Popen(munged, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)]
    time.sleep(0.5)
    daemons.append(subprocess.Popen(["slurmctld", "-D", "-f", str(conf)], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
    time.sleep(1)
    daemons.append(subprocess.Popen(["slurmd", "-D", "-f", str(conf), "-N", host], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
    deadline, state = time.monotonic() + 60, ""
    while time.monotonic() < deadline:
        r = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env)
        state = r.stdout.strip()
        if state == "idle" or any(d.poll() is not None for d in daemons):
            break
        time.sleep(0.5)
    if state != "idle":
        logs = [root / "munged.log", root / "slurmctld.log", root / "slurmd.log"]
        dead = [d.args[0] for d in daemons if d.poll() is not None]
        for d in daemons:
            d.terminate()
        unavailable(f"the one-node SLURM did not come up (node {state or 'unknown'}"
                     f"{', ' + ', '.join(map(os.path.basename, dead)) + ' exited' if dead else ''}): "
                     + " | ".join(f"{p.name}: {_last_line(p)}" for p in logs), "SLURM")
    yield {"env": env, "root": root}
    subprocess.run(["scancel", "--full", "--user", "root"], env=env, capture_output=True)
    for d in reversed(daemons):
        d.send_signal(signal.SIGTERM)
        try:
            d.wait(timeout=15)
        except subprocess.TimeoutExpired:
            d.kill()


def sweep(env, root, name, *args, **kw):
    cmd = [sys.executable, str(MODELS / "sweep.py"), name, *TINY, "--executor", "slurm", "--cpus-per-task", "1",
           "--time", "20", "--dir", str(root), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=900, **kw)


def test_a_sweep_runs_as_a_job_array_on_slurm(slurm, tmp_path):
    r = sweep(slurm["env"], tmp_path, "array")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "submitted job array" in r.stdout and "as one SLURM job array" in r.stdout
    folder = tmp_path / "array"
    summary = json.loads((folder / "summary.json").read_text())
    assert {g["model"] for g in summary["groups"]} == {"ae32", "vae32"}
    for run in ("ae32_s0", "vae32_s0"):
        assert read_metrics(folder / run)["epochs"] == 1
    logs = sorted((folder / "logs").glob("*_log.out"))
    assert len(logs) == 2 and all("results in" in p.read_text() for p in logs)  # each run's own log


def three_epochs(env, root, name):
    """A sweep of one 3-epoch VAE run on SLURM, started and waited on until its first epoch is saved:
    (its command, its process, its folder, the SLURM job id)."""
    folder = root / name
    args = ["--models", "vae32", "--seeds", "0", "--script-args", "--epochs 3 --train-subset 20000 --test-subset 500"]
    cmd = [sys.executable, str(MODELS / "sweep.py"), name, *args, "--executor", "slurm", "--cpus-per-task", "1",
           "--time", "20", "--dir", str(root)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    deadline = time.monotonic() + 300
    while not (folder / "vae32_s0.resume.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # the run has finished its first epoch
    assert (folder / "vae32_s0.resume.pt").exists(), "no epoch finished in time"
    jobs = subprocess.run(["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True, env=env).stdout.split()
    assert jobs and jobs[1] == "RUNNING", jobs
    return cmd, proc, folder, jobs[0]


def test_a_run_cancelled_with_scancel_is_finished_by_running_the_sweep_again(slurm, tmp_path):
    env = slurm["env"]
    cmd, proc, folder, job = three_epochs(env, tmp_path, "halt")
    subprocess.run(["scancel", job], env=env, check=True)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode != 0 and "1 runs failed (vae32_s0)" in err, out + err
    assert "CANCELLED" in out, out
    assert not (folder / "vae32_s0" / "metrics.json").exists()
    assert (folder / "vae32_s0.resume.pt").exists()  # the cancelled run kept its last whole epoch
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    log = max((folder / "logs").glob("*_log.out"), key=lambda p: p.stat().st_mtime).read_text()
    assert "--resume" in log  # the rerun continued from the resume state
    assert [h["epoch"] for h in read_metrics(folder / "vae32_s0")["history"]] == [1, 2, 3]


def test_a_preempted_run_is_requeued_and_resumes(slurm, tmp_path):
    """USR2 is what SLURM sends before a job's time runs out or it is preempted (submitit asks for it):
    submitit checkpoints the job, which stops the script and requeues itself with --resume."""
    env = slurm["env"]
    _, proc, folder, job = three_epochs(env, tmp_path, "preempt")
    subprocess.run(["scancel", "--signal=USR2", job], env=env, check=True)
    # SLURM holds a requeued job about two minutes before it may start again (squeue's reason: BeginTime);
    # the test lets it start at once, as an administrator would with scontrol
    deadline, state = time.monotonic() + 120, ""
    while time.monotonic() < deadline and state != "PENDING BeginTime":
        time.sleep(0.5)
        state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T %r"], capture_output=True, text=True,
                               env=env).stdout.strip()
    assert state == "PENDING BeginTime", state   # submitit requeued it
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=env, check=True)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, out + err
    assert "[1/1] vae32_s0 ok" in out
    logs = (folder / "logs").glob("*_log.*")
    text = "\n".join(p.read_text(errors="replace") for p in logs)
    assert "requeu" in text.lower() and "--resume" in text  # submitit requeued it; the script resumed
    assert [h["epoch"] for h in read_metrics(folder / "vae32_s0")["history"]] == [1, 2, 3]
