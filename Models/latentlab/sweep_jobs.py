"""Sweeps: many independent runs of the model scripts (model × seed × β, architecture or code size), each one a subprocess of the
script's own command line writing ``--lean`` results into ``sweeps/<sweep>/<run>/``, never into the
results folders; then ``summary.json``: every metric's mean and standard deviation over the seeds.

Resumable: a run whose folder holds ``metrics.json`` is done and skipped; one that was interrupted
(Ctrl-C, SIGTERM) left a resume state and continues with ``--resume``; any other starts afresh (the
script's atomic results folder means no half-written run can pass for a finished one). The runs are
submitit jobs (the executor behind Hydra's submitit launcher): local processes, N at once with the
machine's cores split between them, or one SLURM job array, requeued with --resume when preempted;
each job's log is in ``sweeps/<sweep>/logs/``. ``--print-commands`` prints the same commands, one a
line, for GNU parallel or any other scheduler.
"""
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import submitit

from . import UserError
from .checkpoints import resume_path
from .data import REPO_ROOT
from .models import ARCHS
from .registry import specs

SWEEPS_DIR = REPO_ROOT / "sweeps"
FP32 = ["--precision", "fp32"]  # every preset trains in fp32: the same kind of numbers on CPUs with and without bf16
# name -> what it runs (models: every model of the registry unless listed); script defaults otherwise
PRESETS = {
    "seeds": {"seeds": [0, 1, 2, 3, 4], "betas": [None], "args": FP32},
    "beta": {"models": ["vae2", "vae32"], "seeds": [0, 1, 2], "betas": [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0], "args": FP32},
    # both pairs at one budget of 10 epochs: a conv epoch costs several MLP epochs on CPU
    "arch": {"models": ["ae2", "vae2", "ae32", "vae32"], "seeds": [0, 1, 2], "betas": [None], "archs": ["mlp", "conv"], "args": ["--epochs", "10", *FP32]},
    # the 32-D scripts (any code size; AE 15 epochs, VAE 30, as their defaults) at six code sizes
    "latent": {"models": ["ae32", "vae32"], "seeds": [0, 1, 2], "betas": [None], "latents": [2, 4, 8, 16, 32, 64],
               "args": FP32},
    # variants: named sets of flags, each a group of runs compared with the first (table.md)
    "warmup": {"models": ["vae32"], "seeds": [0, 1, 2], "betas": [None], "args": FP32,
               "variants": {"no-warmup": [], "warmup10": ["--beta-warmup", "10"]}},
    "likelihood": {"models": ["vae2", "vae32"], "seeds": [0, 1, 2], "betas": [None], "args": FP32,
                   "variants": {"bernoulli": [], "continuous-bernoulli": ["--likelihood", "continuous-bernoulli"]}},
}
# metrics.json keys that are settings, not measurements: not summarised
SETTINGS = {"latent_dim", "epochs", "batch_size", "lr", "seed", "train_subset", "test_subset", "beta", "threads", "iwae_k",
            "arch", "likelihood", "beta_warmup"}


@dataclass(frozen=True)
class Run:
    """One script run of a sweep."""
    key: str                 # model, as in the registry ("vae2")
    seed: int
    beta: float = None       # None: the script has no --beta (AE) or keeps its default
    args: tuple = ()         # further flags for the script, e.g. ("--epochs", "1")
    folder: Path = field(default=None, compare=False)
    arch: str = None         # None: the script's default (mlp), with no --arch flag
    latent: int = None       # None: the script's code size, with no --latent-dim flag
    variant: str = field(default=None, compare=False)  # the name of a variant's flags, which are in args

    @property
    def name(self):
        model = self.key if self.latent is None else f"{specs()[self.key].model.name}{self.latent}"  # "vae8"
        arch = "" if self.arch is None else f"_{self.arch}"
        variant = "" if self.variant is None else f"_{self.variant}"
        return model + arch + variant + ("" if self.beta is None else f"_b{self.beta:g}") + f"_s{self.seed}"

    @property
    def out(self):
        return self.folder / self.name

    def done(self):
        return (self.out / "metrics.json").exists()

    def argv(self, python=sys.executable):
        """The script's command line; continues an interrupted run where it left a resume state."""
        beta = [] if self.beta is None else ["--beta", f"{self.beta:g}"]
        arch = [] if self.arch is None else ["--arch", self.arch]
        arch += [] if self.latent is None else ["--latent-dim", str(self.latent)]
        resume = ["--resume"] if resume_path(self.out).exists() else []
        return [python, str(REPO_ROOT / "Models" / specs()[self.key].script), "--seed", str(self.seed), *arch, *beta,
                *self.args, "--lean", "--quiet", "--out", str(self.out), *resume]


def definition(name, models=None, seeds=None, betas=None, args=None, archs=None, latents=None, variants=None):
    """The sweep's settings: a preset's, with any part given replacing it. ``variants``: {name: flags},
    each set of flags a group of runs of its own, compared with the first (``sweep_reports.versus_table``)."""
    base = PRESETS.get(name, {"seeds": [0], "betas": [None]})
    d = {"models": list(models or base.get("models") or specs()), "seeds": list(seeds if seeds is not None else base["seeds"]),
         "betas": list(betas or base["betas"]), "args": list(args if args is not None else base.get("args", []))}
    archs = list(archs or base.get("archs", [None]))
    if archs != [None]:   # absent otherwise, as in the sweep.json of sweeps made before --archs
        d["archs"] = archs
    variants = dict(variants or base.get("variants", {}))
    if variants:
        d["variants"] = {k: list(v) for k, v in variants.items()}
        bad = [k for k in variants if not re.fullmatch(r"[\w.+-]+", k)]
        if bad:
            raise UserError(f"variant name {bad[0]!r}: use letters, digits, '.', '+', '-' or '_' (it names folders)")
    latents = list(latents or base.get("latents", [None]))
    if latents != [None]:
        d["latents"] = latents
        fixed = [m for m in d["models"] if specs()[m].latent_dim == 2]
        if fixed:
            raise UserError(f"{fixed[0]} keeps a 2-D code; sweep code sizes with the 32-D models (ae32, vae32)")
        if min(latents) < 2:
            raise UserError(f"a code of {min(latents)} dimensions: give 2 or more")
    unknown = [m for m in d["models"] if m not in specs()]
    if unknown:
        raise UserError(f"unknown model {unknown[0]!r}; choose from {', '.join(specs())}")
    unknown = [a for a in archs if a not in (None, *ARCHS)]
    if unknown:
        raise UserError(f"unknown architecture {unknown[0]!r}; choose from {', '.join(ARCHS)}")
    return d


def plan(name, d, root=SWEEPS_DIR):
    """The runs of sweep ``name`` with settings ``d`` under ``root/name``; refuses a folder made with
    other settings (its runs would not belong together)."""
    folder = root / name
    saved = folder / "sweep.json"
    if saved.exists() and json.loads(saved.read_text()) != d:
        raise UserError(f"{folder} holds a sweep with other settings ({saved}); "
                        f"choose another name or delete that folder")
    runs = []
    for key in d["models"]:
        betas = d["betas"] if specs()[key].model.variational else [None]  # an AE has no KL term to weigh
        for latent in d.get("latents", [None]):
            for arch in [a for a in d.get("archs", [None]) if a in (None, *specs()[key].model.archs)]:
                for variant, flags in (d.get("variants") or {None: []}).items():
                    for beta in betas:
                        runs += [Run(key, seed, beta, tuple(d["args"] + flags), folder, arch, latent, variant)
                                 for seed in d["seeds"]]
    return folder, runs


def twin(run, threads):
    """A finished run of another sweep beside this one with the very same command line and threads
    (β = 1 of a β sweep is the seeds sweep's VAE run), or None: copying it saves a training."""
    beta = run.beta if run.beta is not None or not specs()[run.key].model.variational else 1.0
    for sweep_json in sorted(run.folder.parent.glob("*/sweep.json")):
        if sweep_json.parent == run.folder:
            continue
        try:
            _, others = plan(sweep_json.parent.name, json.loads(sweep_json.read_text()), run.folder.parent)
        except (UserError, KeyError):  # a sweep of a model this registry no longer has
            continue
        for other in others:
            if (other.key, other.seed, other.args) != (run.key, run.seed, run.args) or not other.done():
                continue
            m = json.loads((other.out / "metrics.json").read_text())
            if (m.get("beta"), m["threads"], m.get("arch", "mlp"), m["latent_dim"]) == (
                    beta, threads, run.arch or "mlp", run.latent or specs()[run.key].latent_dim):
                return other.out
    return None


def thread_env(jobs):
    """Environment for one of ``jobs`` simultaneous runs: the cores split evenly between them."""
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def shell_command(run, jobs):
    """``run`` as one line to paste into a shell at the repository root."""
    env = " ".join(f"{k}={v}" for k, v in thread_env(jobs).items())
    argv = run.argv(python="python")
    rel = [str(Path(a).relative_to(REPO_ROOT)) if a.startswith(str(REPO_ROOT)) else a for a in argv]
    return f"{env} " + " ".join(shlex.quote(a) for a in rel)


def _clock(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ScriptJob:
    """One run as a submitit job: the script's own command line in a subprocess, with ``threads`` CPU
    threads; its output goes to the job's log. When SLURM preempts the job or its time runs out,
    submitit calls ``checkpoint``: the script is stopped (it keeps the state of its last finished
    epoch) and the same job is requeued, whose command line then carries --resume."""

    def __init__(self, run, threads):
        self.run, self.threads, self._proc = run, threads, None

    def __getstate__(self):  # submitit pickles the job; the live process stays behind
        return {"run": self.run, "threads": self.threads, "_proc": None}

    def __call__(self):
        threads = os.environ.get("SLURM_CPUS_PER_TASK", str(self.threads))
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        argv = self.run.argv()
        print(" ".join(shlex.quote(a) for a in argv), flush=True)
        self._proc = subprocess.Popen(argv, env=env)
        try:
            # polled, not wait(): checkpoint() runs in a signal handler and must be able to wait itself
            while self._proc.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:  # a cancel: the script saves its last whole epoch and exits
            self._proc.send_signal(signal.SIGINT)
            self._proc.wait()
            raise
        code = self._proc.returncode
        if code != 0:
            raise RuntimeError(f"{self.run.name} exited with code {code}")
        return self.run.name

    def checkpoint(self):
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()  # the script stops; its last finished epoch is in its resume state
            try:
                self._proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        return submitit.helpers.DelayedSubmission(ScriptJob(self.run, self.threads))


def make_executor(where, logs, jobs=1, **slurm):
    """A submitit executor whose jobs log into ``logs``: "local" runs them as processes of this machine
    (``jobs`` at once, see ``run_all``), "slurm" submits them to the cluster that SLURM_CONF and the
    usual environment name, with ``slurm`` as sbatch settings (partition, time in minutes,
    cpus_per_task, gpus_per_task, mem, array_parallelism)."""
    # the job unpickles its ScriptJob from this package, on this machine or on a node sharing the disk
    models = str(REPO_ROOT / "Models")
    if models not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (models, os.environ.get("PYTHONPATH")) if p)
    if where == "local":
        executor = submitit.LocalExecutor(folder=logs)
        executor.update_parameters(timeout_min=slurm.get("time") or 24 * 60)
        return executor, jobs
    if where != "slurm":
        raise UserError(f"unknown executor {where!r}; choose local or slurm")
    executor = submitit.SlurmExecutor(folder=logs)
    settings = {k: v for k, v in slurm.items() if v is not None}
    executor.update_parameters(signal_delay_s=120, job_name="latentlab", **settings)
    return executor, None  # SLURM itself decides how many run at once (--array-parallelism)


SLURM_ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}


def slurm_state(job_id):
    """A SLURM job's state from scontrol, which needs no accounting database (submitit's own watcher
    asks sacct); None once SLURM has forgotten the job."""
    r = subprocess.run(["scontrol", "show", "job", "-o", str(job_id)], capture_output=True, text=True)
    found = re.search(r"JobState=(\S+)", r.stdout)
    return found.group(1) if found else None


REQUEUE_GRACE_S = 15
REQUEUE_WAIT_S = 300


def requeued(job):
    """Whether submitit's log of ``job`` says it requeued itself after its last start: SLURM can then
    show the old run's end state (even FAILED) for a while before the job is PENDING again."""
    try:
        log = job.paths.stderr.read_text(errors="replace")
    except OSError:
        return False
    return log.rfind("Requeued job") > log.rfind("Starting with")


def _ended(job, slurm, poll, first_seen):
    """(ended, SLURM state): a job has ended when it wrote its result (or error), or when SLURM has
    said so for ``REQUEUE_GRACE_S`` seconds, or ``REQUEUE_WAIT_S`` if it had requeued itself (a
    preempted job is PENDING again once SLURM has stopped its old run). ``first_seen``: job id ->
    when it was first seen ended."""
    if job.paths.result_pickle.exists():
        return True, None
    if not slurm:
        return job.done(), None
    if not poll:
        return False, None
    state = slurm_state(job.job_id)
    if state is not None and state not in SLURM_ENDED:
        first_seen.pop(job.job_id, None)
        return False, state
    since = first_seen.setdefault(job.job_id, time.monotonic())
    grace = REQUEUE_WAIT_S if requeued(job) else REQUEUE_GRACE_S
    return time.monotonic() - since >= grace, state


@contextmanager
def _own_output(logs, local):
    """submitit's local job controllers inherit this process's stdout and stderr, and an interrupted one
    prints its own traceback there: while they are started, both point at logs/controllers.log."""
    if not local:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    logs.mkdir(parents=True, exist_ok=True)
    saved = [os.dup(1), os.dup(2)]
    with open(logs / "controllers.log", "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            for fd, copy in ((1, saved[0]), (2, saved[1])):
                os.dup2(copy, fd)
                os.close(copy)


def run_all(executor, limit, runs, threads, say=partial(print, flush=True)):
    """Every run as a job of ``executor``, at most ``limit`` at once (None: all submitted at once, as one
    job array); returns the names of those that failed. KeyboardInterrupt cancels the live jobs, each
    of which keeps its last whole epoch for --resume."""
    began, failed, done, pending, live = time.perf_counter(), [], 0, list(runs), {}
    slurm, polls, seen_ended = isinstance(executor, submitit.SlurmExecutor), 0, {}
    try:
        while pending or live:
            room = len(pending) if limit is None else limit - len(live)
            if room > 0 and pending:
                batch, pending = pending[:room], pending[room:]
                with _own_output(executor.folder, not slurm), executor.batch():  # one sbatch job array on SLURM
                    submitted = [executor.submit(ScriptJob(run, threads)) for run in batch]
                live.update(zip(submitted, batch))
                if slurm:
                    say(f"submitted job array {submitted[0].job_id.split('_')[0]} ({len(submitted)} runs)")
            time.sleep(0.5)
            polls += 1
            for job in list(live):
                ended, state = _ended(job, slurm, polls % 10 == 0, seen_ended)  # scontrol every 5 s
                if not ended:
                    continue
                run = live.pop(job)
                done += 1
                if not job.paths.result_pickle.exists():
                    time.sleep(1)  # the result may land just after the state changed
                error = job.exception() if job.paths.result_pickle.exists() else f"{state or 'gone'}, no result"
                if error is not None and slurm:  # e.g. CANCELLED, when scancel stopped the script
                    for _ in range(30):
                        state = slurm_state(job.job_id)
                        if state is None or state in SLURM_ENDED:
                            break
                        time.sleep(0.5)  # COMPLETING: its processes are still being stopped
                elapsed = time.perf_counter() - began
                eta = elapsed / done * (len(runs) - done)
                why = _last_line(error) if state is None or state in str(error) else f"{state}: {_last_line(error)}"
                status = "ok" if error is None else f"FAILED ({why}; log {job.paths.stderr})"
                say(f"[{done}/{len(runs)}] {run.name} {status} · elapsed {_clock(elapsed)} · left ~{_clock(eta)}")
                if error is not None:
                    failed.append(run.name)
    except KeyboardInterrupt:
        for job in live:
            job.cancel(check=False)  # SIGINT to a local job; scancel, whose SIGTERM the script obeys, on SLURM
        deadline = time.monotonic() + 120
        for job in live:
            while not _ended(job, slurm, True, seen_ended)[0] and time.monotonic() < deadline:
                time.sleep(0.5)
        raise
    return failed


def _last_line(error):
    """The line that says what went wrong: the last "SomeError: ..." of a job's trace, else the last line."""
    lines = str(error).strip().splitlines()
    named = [line for line in lines if re.match(r"\w+(Error|Exception|Interrupt)\b", line)]
    return (named or lines or [type(error).__name__])[-1].strip()


def summarize(records, name=None, settings=None):
    """Every numeric metric of ``records`` (dicts of key, beta, seed, name and the run's metrics.json),
    grouped by (model, architecture, variant, β, code size): mean, sd (n − 1) and the values in seed order."""
    groups = {}
    for r in records:
        groups.setdefault((r["key"], r.get("arch"), r.get("variant"), r["beta"], r.get("latent")), []).append(r)
    out = []
    for (key, arch, variant, beta, latent), members in groups.items():
        members.sort(key=lambda r: r["seed"])
        first = members[0]["metrics"]
        names = [k for k, v in first.items() if k not in SETTINGS and isinstance(v, (int, float))
                 and not isinstance(v, bool)]
        stats = {}
        for k in names:
            values = [r["metrics"][k] for r in members if k in r["metrics"]]
            sd = float(np.std(values, ddof=1)) if len(values) > 1 else None
            stats[k] = {"mean": float(np.mean(values)), "sd": sd, "values": values}
        spec = specs()[key] if latent is None else specs()[key].with_latent(latent)
        label = spec.label + "".join(f" ({v})" for v in (arch, variant) if v is not None)
        out.append({"model": key, "label": label, "arch": arch, "beta": beta, "latent_dim": spec.latent_dim,
                    **({} if variant is None else {"variant": variant}),
                    "n": len(members),
                    "seeds": [r["seed"] for r in members], "runs": [r["name"] for r in members],
                    "setup": {k: first.get(k) for k in ("epochs", "precision", "device", "threads", "torch_version",
                                                      "test_subset", "likelihood", "beta_warmup")},
                    "metrics": stats})
    return {"sweep": name, "settings": settings, "groups": out}


def records(runs):
    """What ``summarize`` takes, from finished sweep runs."""
    return [{"key": r.key, "arch": r.arch, "variant": r.variant, "beta": r.beta, "latent": r.latent, "seed": r.seed,
             "name": r.name,
             "metrics": json.loads((r.out / "metrics.json").read_text())} for r in runs]
