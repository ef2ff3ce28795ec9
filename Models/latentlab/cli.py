"""What every script shares: its flags, the device, seeding, and the run: train (or load), then
hand the model to ``write_results`` to evaluate and draw, and to ``folder_swap`` to swap in.

Problems the user can fix end as one line on stderr and exit code 2; an interrupt ends with 130
and leaves a resume state (``checkpoints``) when training had started.
"""
import argparse
import gc
import math
import random
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from . import UserError
from .checkpoints import load_resume, load_run, resume_path, save_resume
from .data import REPO_ROOT, first_test_images, load_mnist
from .folder_swap import swap_in, writing
from .inference import IMAGES as VI_IMAGES
from .likelihoods import NAMES as LIKELIHOODS
from .models import build_model
from .training import Interrupted, StopFlag, fit, frame_subset

EXIT_USER_ERROR, EXIT_INTERRUPTED = 2, 130
SUMMARY_KEYS = ("test_mse", "test_bce", "test_neg_elbo", "test_nll_iwae", "knn_accuracy",
                "recon_accuracy", "fid_mnist", "train_seconds")


@dataclass(frozen=True)
class ModelSpec:
    """Everything in which the four scripts differ."""
    script: str          # file name in Models/, for messages
    model: type          # the model's class in ``models``: AutoEncoder or VAE
    latent_dim: int
    results_dir: str     # relative to the repo root
    figures: tuple       # keys of ``extra`` in ``run_figures.write_all``, drawn besides the common ones
    epochs: int
    batch_size: int
    lr: float
    hidden: tuple = (512, 256)

    @property
    def key(self):
        """Short name for tests, sweeps and the page: "ae2", "vae32", ..."""
        return f"{self.model.name}{self.latent_dim}"

    @property
    def label(self):
        """Name in tables and figures: "AE 2-D", "VAE 32-D", ..."""
        return f"{self.model.label} {self.latent_dim}-D"

    def results_for(self, arch, likelihood="bernoulli"):
        """The default results folder of ``arch`` and ``likelihood``: the defaults' is ``results_dir``, any
        other's sits beside it with a suffix (``2D_latent_VAE_conv``, ``2D_latent_VAE_continuous-bernoulli``),
        so it never replaces the defaults'."""
        suffix = "".join(f"_{v}" for v, default in ((arch, "mlp"), (likelihood, "bernoulli")) if v != default)
        return self.results_dir + suffix

    def with_latent(self, n):
        """This model with an n-dimensional code, its default results beside this one's
        (``8D_latent_VAE`` beside ``32D_latent_VAE``)."""
        if n == self.latent_dim:
            return self
        folder = Path(self.results_dir)
        name = folder.name.replace(f"{self.latent_dim}D_", f"{n}D_", 1)
        return replace(self, latent_dim=n, results_dir=str(folder.with_name(name)))


# --------------------------------------------------------------------------- flags

class Parser(argparse.ArgumentParser):
    """argparse that ends a bad command line with one line and exit code 2 (no usage block)."""

    def error(self, message):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message}\n")


def integer(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def positive(cast):
    """A flag type: ``cast`` (int or float) of the text, which must be positive and finite."""
    def parse(text):
        try:
            value = cast(text)
        except ValueError:
            try:
                float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not (value > 0 and math.isfinite(value)):  # NaN fails the comparison too
            raise argparse.ArgumentTypeError(f"{text!r} must be a positive finite number")
        return value
    parse.__name__ = cast.__name__
    return parse


def non_negative(text):
    n = integer(text)
    if n < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return n


def latent_size(text):
    n = integer(text)
    if n < 2:
        raise argparse.ArgumentTypeError(f"a code of {n} dimensions: give 2 or more")
    return n


DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps; auto tries cuda, then mps, then cpu (default: auto)"


def build_parser(spec, description=None):
    p = Parser(prog=spec.script, description=description,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=positive(int), default=spec.epochs,
                   help=f"training epochs (default: {spec.epochs})")
    p.add_argument("--batch-size", type=positive(int), default=spec.batch_size,
                   help=f"images per training batch (default: {spec.batch_size})")
    p.add_argument("--lr", type=positive(float), default=spec.lr,
                   help=f"peak Adam learning rate, cosine-decayed to zero (default: {spec.lr:g})")
    p.add_argument("--seed", type=integer, default=0, help="random seed (default: 0)")
    p.add_argument("--arch", choices=spec.model.archs, default="mlp",
                   help="encoder and decoder: mlp (784-512-256-z, ReLU) or conv (two stride-2 3x3 "
                        "convolutions of 32 and 64 channels and a dense layer, mirrored back); a conv run "
                        f"writes to {Path(spec.results_for('conv')).name}/ beside the MLP's folder (default: mlp)")
    if spec.latent_dim != 2:  # the 2-D scripts draw the code plane, so they keep two dimensions
        p.add_argument("--latent-dim", type=latent_size, default=spec.latent_dim,
                       help=f"size of the code z; a size other than {spec.latent_dim} writes to "
                            f"<size>D_{Path(spec.results_dir).name.split('_', 1)[1]}/ beside the default folder "
                            f"(default: {spec.latent_dim})")
    p.add_argument("--likelihood", choices=LIKELIHOODS, default="bernoulli",
                   help="p(x|z) of the decoder's logits: bernoulli (binary cross-entropy on grey levels, as "
                        "the literature) or continuous-bernoulli (Loaiza-Ganem & Cunningham, 2019: a density on "
                        "[0, 1]); training, −ELBO, IWAE and the exact likelihood all follow it; a continuous-"
                        "bernoulli run writes to <folder>_continuous-bernoulli/ beside the default (default: bernoulli)")
    if spec.model.variational:
        p.add_argument("--beta-warmup", type=non_negative, default=0, metavar="EPOCHS",
                       help="β rises linearly from 0 to --beta over the first EPOCHS epochs (KL annealing: Bowman "
                            "et al., 2016; Sønderby et al., 2016); 0 trains with --beta from the start (default: 0)")
        p.add_argument("--vi-images", type=non_negative, default=None, metavar="N",
                       help="per-image variational inference on the first N test images: each image's own q "
                            "fitted on its ELBO, the inference gap split into approximation and amortization "
                            "gaps (docs/variational-inference.md); 0 skips it (default: a tenth of the scored "
                            f"test images, {VI_IMAGES} of the full test set)")
        p.add_argument("--beta", type=positive(float), default=1.0,
                       help="weight of the KL term in the training loss, rec + β·KL (β-VAE, Higgins et al., "
                            "2017); the reported −ELBO and IWAE stay the true bounds (default: 1.0)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="training matmuls: bf16 autocast where the hardware runs it natively (CUDA, "
                        "CPUs with AVX512-BF16/AMX), else fp32; evaluation is always fp32 (default: auto)")
    p.add_argument("--data-root", type=Path, default=None,
                   help="folder holding MNIST/raw with the IDX files (default: the repo's data/)")
    p.add_argument("--out", type=Path, default=None,
                   help=f"results folder (default: {spec.results_dir}, or {Path(spec.results_for('conv')).name} "
                        f"beside it for --arch conv)")
    p.add_argument("--train-subset", type=positive(int), default=None, metavar="N",
                   help="train on the first N training images only, for quick runs (default: all 60000)")
    p.add_argument("--test-subset", type=positive(int), default=None, metavar="N",
                   help="evaluate on the first N test images only, for quick checks: metrics.json records N, "
                        "the page marks the run and the README table refuses it (default: all 10000)")
    p.add_argument("--plots-only", action="store_true",
                   help="skip training: load model.pt from --out and rewrite every figure and "
                        "metrics.json (default: off)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its resume state up to --epochs (default: off)")
    p.add_argument("--lean", action="store_true",
                   help="write metrics.json only (and test_codes.npy for a 2-D latent): no figures, page "
                        "data or model.pt, as sweeps want (default: off)")
    p.add_argument("--quiet", action="store_true", help="print only the final metrics (default: off)")
    return p


# --------------------------------------------------------------------------- helpers

def pick_device(name):
    """The one place that turns --device into a torch.device."""
    name = name.lower()
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not has_mps:
            raise UserError("--device mps was asked for, but this machine has no usable MPS (Apple GPU)")
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {name} was asked for, but torch sees no CUDA GPU here; use --device cpu")
        index = name.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise UserError(f"--device {name}: there are {torch.cuda.device_count()} CUDA devices")
        return torch.device(name)
    raise UserError(f"unknown --device {name!r}; use auto, cpu, cuda, cuda:N or mps")


def native_bf16(device):
    """Whether ``device`` runs bfloat16 matmuls in hardware: CUDA GPUs from Ampere on (a T4 or a V100
    only emulates it, slower than float32), CPUs with AVX512-BF16 or AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def pick_precision(name, device):
    """None for float32 training, or torch.bfloat16 for autocast: asked for, or auto on native hardware."""
    if name == "fp32":
        return None
    if name == "bf16" and device.type == "mps":
        raise UserError("--precision bf16 is not supported on MPS here; use fp32")
    return torch.bfloat16 if name == "bf16" or native_bf16(device) else None


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


# --------------------------------------------------------------------------- the run

def _silent(*args):
    pass


def _subset(data, n):
    if n > len(data.x_train):
        raise UserError(f"--train-subset {n} is larger than the {len(data.x_train)} training images")
    return replace(data, x_train=data.x_train[:n], y_train=data.y_train[:n])


def _keep_resumable(out, config):
    """The per-epoch callback of ``fit``: the state after every finished epoch, saved for --resume."""
    def save(state):
        try:
            save_resume(out, state, config)
        except OSError as e:
            raise UserError(f"cannot write the resume state {resume_path(out)}: {e.strerror or e}; "
                            f"the last good results in {out} are untouched") from None
    return save


def train_model(spec, args, data, device, amp, out, stop, say):
    """Train afresh, or continue the resume state with ``--resume``; returns (model, config, state).

    The state after every finished epoch is kept beside ``out``, so a run killed in any way can
    continue with --resume; an interrupt (Ctrl-C, SIGTERM) raises KeyboardInterrupt.
    """
    config = {"kind": spec.model.name, "latent_dim": spec.latent_dim, "arch": args.arch,
              "hidden": list(spec.hidden), "likelihood": args.likelihood,
              "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
              "seed": args.seed, "train_subset": args.train_subset, "test_subset": args.test_subset,
              "precision": "bf16" if amp is not None else "fp32"}
    if spec.model.variational:
        config["beta"] = args.beta
        if args.beta_warmup:
            config["beta_warmup"] = args.beta_warmup
    state = None
    if args.resume:
        state, saved = load_resume(out, spec, args.epochs, args.arch, args.likelihood)
        config.pop("beta_warmup", None)  # the saved run's settings, not this command line's
        config.update({k: saved[k] for k in ("batch_size", "lr", "seed", "train_subset", "test_subset", "precision",
                                             "beta", "beta_warmup")
                       if k in saved})
        amp = torch.bfloat16 if config["precision"] == "bf16" else None
        say(f"resuming after epoch {state.epoch} of {args.epochs}")
    elif resume_path(out).exists():
        print(f"{spec.script}: note: {resume_path(out)} holds an interrupted run; this run starts afresh "
              f"and replaces it (--resume would continue it)", file=sys.stderr)
    # channels-last: NHWC convolution weights, faster on CPU; Linear layers are left as they are
    model = build_model(spec.model, spec.latent_dim, args.arch, spec.hidden, args.likelihood)
    model = model.to(device, memory_format=torch.channels_last)
    subset = first_test_images(data if config["train_subset"] is None else _subset(data, config["train_subset"]),
                               config["test_subset"])
    frame_index = frame_subset(len(subset.x_test)) if "posterior_evolution" in spec.figures else None
    progress = "none" if args.quiet else "bar" if sys.stdout.isatty() else "lines"
    keep = _keep_resumable(out, config)
    try:
        state = fit(model, subset, args.epochs, config["batch_size"], config["lr"], config["seed"],
                    state, stop, progress, frame_index, amp=amp, beta=config.get("beta", 1.0), on_epoch=keep,
                    beta_warmup=config.get("beta_warmup", 0))
    except Interrupted as e:
        keep(e.snapshot)  # also when no epoch had finished yet
        raise KeyboardInterrupt from None
    return model, config, state


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def run(spec, args, stop):
    """Train (or load), evaluate, draw; everything lands in ``args.out`` at the very end."""
    run_began = time.perf_counter()
    if args.plots_only and (args.resume or args.lean):
        raise UserError(f"--plots-only and {'--resume' if args.resume else '--lean'} exclude each other")
    device = pick_device(args.device)
    amp = pick_precision(args.precision, device)
    out = args.out.expanduser().absolute()
    say = _silent if args.quiet else print
    with writing(out) as staging:
        # Loaded only now: --help, bad flags and a folder another run holds answer without
        # importing matplotlib and scikit-learn.
        from . import write_results
        seed_everything(args.seed)
        data = load_mnist(args.data_root, device)
        if args.plots_only:
            model, config, state = load_run(out, spec, device, args.arch, args.likelihood)
            config["test_subset"] = args.test_subset
        else:
            model, config, state = train_model(spec, args, data, device, amp, out, stop, say)
        # From here on an interrupt stops the run at once; the finished training stays resumable.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            record = write_results.evaluate_and_write(spec, model, data, config, state, staging, device, say,
                                                run_began, model_from=out if args.plots_only else None,
                                                lean=args.lean, vi_images=getattr(args, "vi_images", 0))
            swap_in(staging, out)
        except OSError as e:  # a full disk, above all
            kept = "" if args.plots_only else "; the training is kept: continue with --resume"
            raise UserError(f"cannot write the results ({e.strerror or e}: {e.filename}); the last good "
                            f"results in {out} are untouched{kept}") from None
    if not args.plots_only:
        resume_path(out).unlink(missing_ok=True)
    return record


# --------------------------------------------------------------------------- entry point

def _install_stop_handlers():
    """First Ctrl-C or SIGTERM asks the batch loop to stop; a second one stops at once."""
    stop = StopFlag()

    def handler(signum, frame):
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = True

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def _without_resume(argv):
    return [a for a in (sys.argv[1:] if argv is None else argv) if a != "--resume"]


def main(spec, description=None, argv=None):
    """Entry point of every script: exit 0 on success, 2 on a user error, 130 on an interrupt."""
    args = build_parser(spec, description).parse_args(argv)
    spec = spec.with_latent(getattr(args, "latent_dim", spec.latent_dim))
    if args.out is None:
        args.out = REPO_ROOT / spec.results_for(args.arch, args.likelihood)
    out = args.out.expanduser().absolute()
    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    stop = _install_stop_handlers()
    try:
        record = run(spec, args, stop)
    except UserError as e:
        print(f"{spec.script}: error: {e}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        message = f"{spec.script}: interrupted; the last good results in {out} are untouched."
        if resume_path(out).exists():
            message += (f" Continue with: python Models/{spec.script} --resume "
                        f"{' '.join(_without_resume(argv))}").rstrip()
        print(message, file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
        # Python's exit walks every object torch, torchvision and sklearn made; frozen objects are skipped.
        gc.freeze()
    summary = ", ".join(f"{k} {record[k]:.4g}" for k in SUMMARY_KEYS if k in record)
    print(f"{spec.script}: {summary}; results in {out}")
