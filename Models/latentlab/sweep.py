"""Sweeps: many independent runs of the model scripts (model × seed × β), each one a subprocess of the
script's own command line writing ``--lean`` results into ``sweeps/<sweep>/<run>/``, never into the
results folders; then ``summary.json``: every metric's mean and standard deviation over the seeds.

Resumable: a run whose folder holds ``metrics.json`` is done and skipped; one that was interrupted
(Ctrl-C, SIGTERM) left a resume state and continues with ``--resume``; any other starts afresh (the
script's atomic results folder means no half-written run can pass for a finished one). ``--jobs N``
runs N at once, the machine's cores split between them; ``--print-commands`` prints the same
commands, one a line, for GNU parallel, a SLURM array or Ray.
"""
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from . import UserError
from .checkpoints import resume_path
from .data import REPO_ROOT
from .models import ARCHS
from .registry import specs

SWEEPS_DIR = REPO_ROOT / "sweeps"
PRESETS = {  # name -> what it runs (models: every model of the registry, or of one kind); script defaults otherwise
    "seeds": {"kind": None, "seeds": [0, 1, 2, 3, 4], "betas": [None]},
    "beta": {"kind": "vae", "seeds": [0, 1, 2], "betas": [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0]},
    # both pairs at one budget of 10 epochs: a conv epoch costs several MLP epochs on CPU
    "arch": {"kind": None, "seeds": [0, 1, 2], "betas": [None], "archs": ["mlp", "conv"], "args": ["--epochs", "10"]},
}
# metrics.json keys that are settings, not measurements: not summarised
SETTINGS = {"latent_dim", "epochs", "batch_size", "lr", "seed", "train_subset", "beta", "threads", "iwae_k", "arch"}


@dataclass(frozen=True)
class Run:
    """One script run of a sweep."""
    key: str                 # model, as in the registry ("vae2")
    seed: int
    beta: float = None       # None: the script has no --beta (AE) or keeps its default
    args: tuple = ()         # further flags for the script, e.g. ("--epochs", "1")
    folder: Path = field(default=None, compare=False)
    arch: str = None         # None: the script's default (mlp), with no --arch flag

    @property
    def name(self):
        arch = "" if self.arch is None else f"_{self.arch}"
        return self.key + arch + ("" if self.beta is None else f"_b{self.beta:g}") + f"_s{self.seed}"

    @property
    def out(self):
        return self.folder / self.name

    def done(self):
        return (self.out / "metrics.json").exists()

    def argv(self, python=sys.executable):
        """The script's command line; continues an interrupted run where it left a resume state."""
        beta = [] if self.beta is None else ["--beta", f"{self.beta:g}"]
        arch = [] if self.arch is None else ["--arch", self.arch]
        resume = ["--resume"] if resume_path(self.out).exists() else []
        return [python, str(REPO_ROOT / "Models" / specs()[self.key].script), "--seed", str(self.seed), *arch, *beta,
                *self.args, "--lean", "--quiet", "--out", str(self.out), *resume]


def definition(name, models=None, seeds=None, betas=None, args=None, archs=None):
    """The sweep's settings: a preset's, with any part given replacing it."""
    base = PRESETS.get(name, {"kind": None, "seeds": [0], "betas": [None]})
    preset_models = [k for k, spec in specs().items() if base["kind"] in (None, spec.kind)]
    d = {"models": list(models or preset_models), "seeds": list(seeds if seeds is not None else base["seeds"]),
         "betas": list(betas or base["betas"]), "args": list(args if args is not None else base.get("args", []))}
    archs = list(archs or base.get("archs", [None]))
    if archs != [None]:   # absent otherwise, as in the sweep.json of sweeps made before --archs
        d["archs"] = archs
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
        betas = d["betas"] if specs()[key].kind == "vae" else [None]  # an AE has no KL term to weigh
        for arch in d.get("archs", [None]):
            for beta in betas:
                runs += [Run(key, seed, beta, tuple(d["args"]), folder, arch) for seed in d["seeds"]]
    return folder, runs


def twin(run, jobs):
    """A finished run of another sweep beside this one with the very same command line and threads
    (β = 1 of a β sweep is the seeds sweep's VAE run), or None: copying it saves a training."""
    beta = run.beta if run.beta is not None or specs()[run.key].kind != "vae" else 1.0
    threads = int(thread_env(jobs)["OMP_NUM_THREADS"])
    for sweep_json in sorted(run.folder.parent.glob("*/sweep.json")):
        if sweep_json.parent == run.folder or json.loads(sweep_json.read_text())["args"] != list(run.args):
            continue
        for metrics in sweep_json.parent.glob(f"{run.key}_*s{run.seed}/metrics.json"):
            m = json.loads(metrics.read_text())
            if (m["seed"], m.get("beta"), m["threads"], m.get("arch", "mlp")) == (run.seed, beta, threads,
                                                                                  run.arch or "mlp"):
                return metrics.parent
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


class Executor:
    """Runs sweep runs as subprocesses, ``jobs`` at a time, and forwards an interrupt to them."""

    def __init__(self, jobs, say=partial(print, flush=True)):  # progress shows even when piped
        self.jobs, self.say = jobs, say
        self.live, self.lock, self.stopping = set(), threading.Lock(), False

    def one(self, run):
        env = {**os.environ, **thread_env(self.jobs)}
        with self.lock:
            if self.stopping:
                return None, "not started"
            proc = subprocess.Popen(run.argv(), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, start_new_session=True)  # our Ctrl-C reaches it through us
            self.live.add(proc)
        out, err = proc.communicate()
        with self.lock:
            self.live.discard(proc)
        return proc.returncode, (err.strip().splitlines() or out.strip().splitlines() or [""])[-1]

    def all(self, runs):
        """Run every run; returns the names of those that failed. KeyboardInterrupt stops the rest."""
        began, failed, done = time.perf_counter(), [], 0
        pool = ThreadPoolExecutor(self.jobs)
        futures = {pool.submit(self.one, run): run for run in runs}
        try:
            for future in as_completed(futures):
                run, (code, last) = futures[future], future.result()
                done += 1
                elapsed = time.perf_counter() - began
                eta = elapsed / done * (len(runs) - done)
                status = "ok" if code == 0 else f"FAILED (exit {code}): {last}"
                self.say(f"[{done}/{len(runs)}] {run.name} {status} · elapsed {_clock(elapsed)} · left ~{_clock(eta)}")
                if code != 0:
                    failed.append(run.name)
        except KeyboardInterrupt:
            with self.lock:
                self.stopping = True
                for proc in self.live:  # each saves its last whole epoch and exits
                    proc.send_signal(signal.SIGINT)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
        return failed


def summarize(records, name=None, settings=None):
    """Every numeric metric of ``records`` (dicts of key, beta, seed, name and the run's metrics.json),
    grouped by (model, architecture, β): mean, sd (n − 1) and the values in seed order."""
    groups = {}
    for r in records:
        groups.setdefault((r["key"], r.get("arch"), r["beta"]), []).append(r)
    out = []
    for (key, arch, beta), members in groups.items():
        members.sort(key=lambda r: r["seed"])
        first = members[0]["metrics"]
        names = [k for k, v in first.items() if k not in SETTINGS and isinstance(v, (int, float))
                 and not isinstance(v, bool)]
        stats = {}
        for k in names:
            values = [r["metrics"][k] for r in members if k in r["metrics"]]
            sd = float(np.std(values, ddof=1)) if len(values) > 1 else None
            stats[k] = {"mean": float(np.mean(values)), "sd": sd, "values": values}
        label = specs()[key].label + ("" if arch is None else f" ({arch})")
        out.append({"model": key, "label": label, "arch": arch, "beta": beta, "n": len(members),
                    "seeds": [r["seed"] for r in members], "runs": [r["name"] for r in members],
                    "setup": {k: first.get(k) for k in ("epochs", "precision", "device", "threads", "torch_version")},
                    "metrics": stats})
    return {"sweep": name, "settings": settings, "groups": out}


def records(runs):
    """What ``summarize`` takes, from finished sweep runs."""
    return [{"key": r.key, "arch": r.arch, "beta": r.beta, "seed": r.seed, "name": r.name,
             "metrics": json.loads((r.out / "metrics.json").read_text())} for r in runs]
