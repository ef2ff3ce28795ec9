"""How fast this repo trains, measured in this one run on this machine.

    python benchmarks/train_speed.py [--device cpu] [--sections 1,2,3,4] [--baseline REV]
                                     [--repeats N] [--epochs-images N] [--conv-end-to-end]

1. torch.mm of two 2048 x 2048 matrices in float32 (and bfloat16 where supported): the machine's peak.
2. Seconds of a training epoch of each default model, this tree against a baseline revision (checked
   out with ``git worktree``, each tree timed in its own process, the two taking turns), and this
   tree's ``--arch conv`` besides.
3. The evaluation's sum of softplus over decoded images: ``likelihoods.softplus_sum`` against torch's
   ``F.softplus(l).sum(-1)``.
4. Each script with its defaults, end to end: wall seconds, and the train / evaluation / figures
   seconds from its metrics.json.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "Models"))

from latentlab import UserError, likelihoods  # noqa: E402
from latentlab.cli import DEVICE_HELP, EXIT_USER_ERROR, Parser, pick_device, pick_precision  # noqa: E402
from latentlab.cli import positive  # noqa: E402
from latentlab.data import DEFAULT_DATA_ROOT  # noqa: E402
from latentlab.registry import specs  # noqa: E402

SPECS = specs()
EPOCH_IMAGES = 60_000

# Run by a fresh interpreter with one tree's Models/ on PYTHONPATH; argv[1] is the JSON of
# [device, data root, images, [[model key, arch], ...]]; prints each job's seconds as JSON. It knows
# both training APIs: make_optimizer returning one optimizer (the hand-written step's revisions) or
# (optimizer, scheduler); build_model with or without ``arch``. train_epoch ends in .tolist(), which
# waits for the device.
SNIPPET = r"""
import inspect, json, math, sys, time
import torch
from latentlab import cli, data, models, registry, training

device, root, images, jobs, precision = json.loads(sys.argv[1])
device = cli.pick_device(device)
amp = cli.pick_precision(precision, device)
mnist = data.load_mnist(root, device)
x, y = mnist.x_train, mnist.y_train
labelled = "y_train" in inspect.signature(training.train_epoch).parameters  # since the conditional VAE
if hasattr(training, "keep_freed_memory"):  # what the old fit() did first
    training.keep_freed_memory()

def seconds(spec, arch):
    torch.manual_seed(0)
    with_arch = "arch" in inspect.signature(models.build_model).parameters
    name = spec.model.name if hasattr(spec, "model") else spec.kind  # the class, since the model interface
    model = models.build_model(name, spec.latent_dim, *([arch] if with_arch else []), spec.hidden)
    model = model.to(device, memory_format=torch.channels_last)  # as the scripts build it
    made = training.make_optimizer(model, spec.lr, spec.epochs, math.ceil(len(x) / spec.batch_size))
    steppers = made if isinstance(made, tuple) else (made,)
    (model.init_output_bias(x) if hasattr(model, "init_output_bias") else training.init_output_bias(model, x))
    n = 4 * spec.batch_size
    training.train_epoch(model, *steppers, x[:n], spec.batch_size, amp=amp, **({"y_train": y[:n]} if labelled else {}))
    began = time.perf_counter()
    training.train_epoch(model, *steppers, x[:images], spec.batch_size, amp=amp,
                         **({"y_train": y[:images]} if labelled else {}))
    return time.perf_counter() - began

known = registry.specs()  # a baseline may predate a model: None for it
print(json.dumps([seconds(known[key], arch) if key in known else None for key, arch in jobs]))
"""


def cpu_name():
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    names = (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    return next(names, "unknown CPU")


def table(head, rows):
    """Print ``rows`` under ``head``: the first column left-aligned, the others right-aligned."""
    cells = [list(head)] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    for row in cells:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))


def label(spec, arch):
    return spec.label if arch == "mlp" else f"{spec.label} {arch}"


def precision(amp):
    return "fp32" if amp is None else "bf16"


# --------------------------------------------------------------------------- 1. matmul peak

def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device, dtype, n=2048, reps=3, trials=5):
    """Best of ``trials``: on a shared machine the slower ones measure the neighbours."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(trials):
        sync(device)
        began = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b)
        sync(device)
        best = min(best, time.perf_counter() - began)
    return 2 * n ** 3 * reps / best / 1e9


def section_peak(device, amp, args):
    print("\n1. torch.mm, 2048 x 2048, best of 5 trials")
    dtypes = [torch.float32] + ([torch.bfloat16] if amp is not None else [])
    table(("dtype", "GFLOP/s"), [(str(d)[6:], f"{matmul_gflops(device, d):.0f}") for d in dtypes])


# --------------------------------------------------------------------------- 2. this tree against a baseline

def git(*args):
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)


def has_revision(rev):
    try:
        return git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").returncode == 0
    except FileNotFoundError:  # no git at all
        return False


@contextmanager
def worktree(rev):
    """A detached checkout of ``rev`` in a temporary folder, removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="train_speed-"))
    try:
        added = git("worktree", "add", "--detach", str(tmp / "tree"), rev)
        if added.returncode:
            raise UserError(f"git worktree add {rev}: {(added.stderr.strip() or '?').splitlines()[-1]}")
        yield tmp / "tree"
    finally:
        git("worktree", "remove", "--force", str(tmp / "tree"))
        shutil.rmtree(tmp, ignore_errors=True)


def time_tree(tree, device, images, jobs, precision="auto"):
    """Seconds of each (model key, arch) job's training pass over ``images`` images in ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree / "Models")}
    argv = json.dumps([device, str(DEFAULT_DATA_ROOT), images, jobs, precision])
    done = subprocess.run([sys.executable, "-c", SNIPPET, argv], cwd=tree, env=env,
                          stdout=subprocess.PIPE, text=True)
    if done.returncode:
        raise UserError(f"the timing snippet failed in {tree} (exit code {done.returncode})")
    return json.loads(done.stdout.splitlines()[-1])


def section_baseline(device, amp, args):
    rev, images = args.baseline, args.epochs_images
    mlp = [[key, "mlp"] for key in SPECS]
    ours = mlp + [[key, "conv"] for key in SPECS if "conv" in SPECS[key].model.archs]
    print(f"\n2. training seconds per {EPOCH_IMAGES:,}-image epoch (timed over {images:,} images, scaled), "
          f"this tree against {rev}; median of {args.repeats}, taking turns")
    base, new = [], []
    if not has_revision(rev):
        print(f"no revision {rev} in this repository (a shallow clone?): this tree only")
        new = [time_tree(REPO, args.device, images, ours, args.precision) for _ in range(args.repeats)]
    else:
        with worktree(rev) as tree:
            for _ in range(args.repeats):
                base.append(time_tree(tree, args.device, images, mlp, args.precision))
                new.append(time_tree(REPO, args.device, images, ours, args.precision))
    scale = EPOCH_IMAGES / images
    base, new = ([None if None in s else statistics.median(s) * scale for s in zip(*side)] for side in (base, new))
    rows = []
    for i, (key, arch) in enumerate(ours):  # the baseline times the first len(base) jobs only
        spec = SPECS[key]
        old, ratio = (f"{base[i]:.2f}", f"{new[i] / base[i]:.2f}") if i < len(base) and base[i] else ("—", "—")
        rows.append((label(spec, arch), spec.batch_size, precision(amp), old, f"{new[i]:.2f}", ratio))
    table(("model", "batch", "precision", f"{rev} s", "this tree s", "new/base"), rows)


# --------------------------------------------------------------------------- 3. softplus_sum in evaluation

def section_softplus(device, amp, args, rows=2000, trials=7):
    """The IWAE bound's and the exact likelihood's inner sum over decoded images: ``likelihoods.softplus_sum``
    against ``F.softplus(l).sum(-1)``, on logits as a trained decoder emits them."""
    torch.manual_seed(0)
    logits = torch.randn(rows, 784, device=device) * 4
    variants = {"likelihoods.softplus_sum": likelihoods.softplus_sum, "F.softplus(l).sum(-1)": lambda l: F.softplus(l).sum(-1)}
    ms = {name: [] for name in variants}
    with torch.no_grad():
        for trial in range(trials + 1):  # the first of each is a warm-up
            for name, fn in variants.items():
                began = time.perf_counter()
                for _ in range(10):
                    fn(logits).sum().item()
                if trial:
                    ms[name].append(100 * (time.perf_counter() - began))
    print(f"\n3. the sum of softplus over {rows} x 784 logits (evaluation, no gradient): ms, median of {trials} alternated trials")
    ours, theirs = (statistics.median(v) for v in ms.values())
    table(("function", "ms"), [(name, f"{m:.2f}") for name, m in zip(ms, (ours, theirs))])
    print(f"F.softplus / softplus_sum: {theirs / ours:.2f}")


# --------------------------------------------------------------------------- 4. end to end

def script_run(spec, arch, device):
    """(wall s, train s, evaluation s, figures s) of the script with its defaults, into a scratch folder."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results"
        cmd = [sys.executable, str(REPO / "Models" / spec.script), "--quiet", "--out", str(out),
               "--device", device, "--arch", arch]
        began = time.perf_counter()
        if subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode:
            raise UserError(f"{spec.script} --arch {arch} failed (its error is above)")
        wall = time.perf_counter() - began
        record = json.loads((out / "metrics.json").read_text())
    return wall, record["train_seconds"], record["eval_seconds"], sum(record["figure_seconds"].values())


def section_end_to_end(device, amp, args):
    jobs = [(spec, arch) for arch in ("mlp", "conv")[:1 + args.conv_end_to_end] for spec in SPECS.values() if arch in spec.model.archs]
    runs = [[] for _ in jobs]
    for _ in range(args.repeats):  # in turns, so a slow spell of a shared machine hits every script
        for job, done in zip(jobs, runs):
            done.append(script_run(*job, args.device))
    print(f"\n4. each script with its defaults, end to end: the run of median wall time of {args.repeats}")
    rows = [(label(*job), *(f"{s:.1f}" for s in sorted(done)[(len(done) - 1) // 2]))
            for job, done in zip(jobs, runs)]
    table(("script", "wall s", "train s", "eval s", "figures s"), rows)


# --------------------------------------------------------------------------- entry point

SECTIONS = {"1": section_peak, "2": section_baseline, "3": section_softplus, "4": section_end_to_end}


def section_list(text):
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    if not chosen or any(s not in SECTIONS for s in chosen):
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(SECTIONS)}")
    return sorted(set(chosen))


def parse_args(argv=None):
    p = Parser(prog="train_speed.py", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="training precision of section 2's timings, as the scripts' flag (default: auto)")
    p.add_argument("--sections", type=section_list, default="1,2,3,4",
                   help="comma-separated sections to run (default: 1,2,3,4)")
    p.add_argument("--baseline", default="0ef2ea7", metavar="REV",
                   help="revision section 2 compares with; 0ef2ea7 is the last with the hand-written "
                        "step (default: 0ef2ea7)")
    p.add_argument("--repeats", type=positive(int), default=3, metavar="N",
                   help="timings of each tree in section 2 and runs of each script in section 4 (default: 3)")
    p.add_argument("--epochs-images", type=positive(int), default=15_000, metavar="N",
                   help="training images timed per model in section 2, at most 60000 (default: 15000)")
    p.add_argument("--conv-end-to-end", action="store_true",
                   help="section 4 also runs each script with --arch conv, which is slow (default: off)")
    args = p.parse_args(argv)
    if args.epochs_images > EPOCH_IMAGES:
        p.error(f"argument --epochs-images: {args.epochs_images} is more than the {EPOCH_IMAGES} images")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        device = pick_device(args.device)
        amp = pick_precision(args.precision, device)
        bf16 = "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "no bf16"
        gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
        load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
        print(f"{cpu_name()}, {bf16} per mkldnn{load}; torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads; device {device}{gpu}, training precision {precision(amp)}")
        for key in args.sections:
            SECTIONS[key](device, amp, args)
    except UserError as e:
        print(f"train_speed.py: error: {e}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


if __name__ == "__main__":
    main()
