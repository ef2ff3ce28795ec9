"""What every script shares: flags, device choice, seeding, the run itself, and its results folder.

A run writes into a staging folder beside the results folder and swaps it in by renaming only
when everything succeeded, so a failed or interrupted run never touches the last good results.
Problems the user can fix end as one line on stderr and exit code 2; an interrupt ends with 130.
"""
import argparse
import gc
import json
import os
import random
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import UserError
from .data import REPO_ROOT, load_mnist

EXIT_USER_ERROR, EXIT_INTERRUPTED = 2, 130


@dataclass(frozen=True)
class ModelSpec:
    """Everything in which the four scripts differ."""
    script: str          # file name in Models/, for messages
    kind: str            # "ae" or "vae"
    latent_dim: int
    results_dir: str     # relative to the repo root
    figures: tuple       # names from ``figures.EXTRA`` written besides the common ones
    epochs: int
    batch_size: int
    lr: float
    hidden: tuple = (512, 256)


# --------------------------------------------------------------------------- flags

class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + error; a user needs only the error
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message}\n")


def _positive(cast):
    def parse(text):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{text!r} must be a positive finite number")
        return value
    parse.__name__ = cast.__name__
    return parse


def _seed(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def build_parser(spec, description=None):
    p = _Parser(prog=spec.script, description=description,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=_positive(int), default=spec.epochs,
                   help=f"training epochs (default: {spec.epochs})")
    p.add_argument("--batch-size", type=_positive(int), default=spec.batch_size,
                   help=f"images per training batch (default: {spec.batch_size})")
    p.add_argument("--lr", type=_positive(float), default=spec.lr,
                   help=f"peak Adam learning rate, cosine-decayed to zero (default: {spec.lr:g})")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="auto",
                   help="auto, cpu, cuda, cuda:N or mps; auto tries cuda, then mps, then cpu (default: auto)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="training matmuls: bf16 autocast where the hardware runs it natively (CUDA, "
                        "CPUs with AVX512-BF16/AMX), else fp32; evaluation is always fp32 (default: auto)")
    p.add_argument("--data-root", type=Path, default=None,
                   help="folder holding MNIST/raw with the IDX files (default: the repo's data/)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / spec.results_dir,
                   help=f"results folder (default: {spec.results_dir})")
    p.add_argument("--train-subset", type=_positive(int), default=None, metavar="N",
                   help="train on the first N training images only, for quick runs (default: all 60000)")
    p.add_argument("--plots-only", action="store_true",
                   help="skip training: load model.pt from --out and rewrite every figure and "
                        "metrics.json (default: off)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its resume state up to --epochs (default: off)")
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


def pick_precision(name, device):
    """None for float32 training, or torch.bfloat16 for autocast where it is fast and supported."""
    if name == "fp32":
        return None
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported()
    elif device.type == "cpu":
        native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    else:
        native = False
    if name == "bf16" and device.type == "mps":
        raise UserError("--precision bf16 is not supported on MPS here; use fp32")
    return torch.bfloat16 if native or name == "bf16" else None


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def resume_path(out):
    return out.parent / f"{out.name}.resume.pt"


def _prepare_staging(out):
    """Check --out early (before any training) and return a fresh staging folder beside it."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = out.parent / f".{out.name}.staging-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        probe = staging / ".probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write results next to {out}: {e.strerror or e}") from None
    if out.exists() and not os.access(out, os.W_OK | os.X_OK):
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(f"cannot replace {out}: it is not writable")
    return staging


def _swap_in(staging, out):
    """Replace ``out`` by ``staging`` with two renames; the old folder is deleted only afterwards."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.rename(out, old)
    os.rename(staging, out)
    shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- the run

def run(spec, args, stop):
    """Train (or load), evaluate, draw; everything lands in ``out`` at the very end."""
    from . import figures
    from .metrics import quality_metrics
    from .models import build_model, load_checkpoint, save_checkpoint
    from .training import Interrupted, TrainState, encode_all, evaluate, fit, frame_subset

    run_began = time.perf_counter()
    if args.plots_only and args.resume:
        raise UserError("--plots-only and --resume exclude each other")
    device = pick_device(args.device)
    amp = pick_precision(args.precision, device)
    out = args.out.expanduser().absolute()
    say = (lambda *a: None) if args.quiet else print
    staging = _prepare_staging(out)
    try:
        seed_everything(args.seed)
        data = load_mnist(args.data_root, device)
        config = {"kind": spec.kind, "latent_dim": spec.latent_dim, "hidden": list(spec.hidden),
                  "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                  "seed": args.seed, "train_subset": args.train_subset,
                  "precision": "bf16" if amp is not None else "fp32"}
        frame_index = None
        if "posterior_evolution" in spec.figures:
            frame_index = frame_subset(len(data.x_test))
        if args.plots_only:
            model, ckpt = load_checkpoint(out / "model.pt", spec, device)
            config, state = ckpt["config"], TrainState(epoch=ckpt["config"]["epochs"],
                                                        history=ckpt["history"],
                                                        train_seconds=ckpt["train_seconds"])
            frames_file = out / figures.CODE_FRAMES
            if frame_index is not None and frames_file.exists():
                state.code_frames = list(torch.from_numpy(np.load(frames_file)))
        else:
            state = None
            if args.resume:
                state, saved = _load_resume(out, spec, args)
                config.update({k: saved[k] for k in ("batch_size", "lr", "seed", "train_subset", "precision")})
                amp = torch.bfloat16 if config["precision"] == "bf16" else None
                say(f"resuming after epoch {state.epoch} of {args.epochs}")
            model = build_model(spec.kind, spec.latent_dim, spec.hidden).to(device)
            subset = data if config["train_subset"] is None else _subset(data, config["train_subset"])
            progress = "none" if args.quiet else "bar" if sys.stdout.isatty() else "lines"
            try:
                state = fit(model, subset, args.epochs, config["batch_size"], config["lr"], config["seed"],
                            state, stop, progress, frame_index, amp=amp)
            except Interrupted as e:
                _save_resume(out, e.snapshot, config)
                raise KeyboardInterrupt from None
        # From here on an interrupt must not lose the finished training: keep it resumable.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            began = time.perf_counter()
            test = evaluate(model, data.x_test, config["seed"])
            train_codes = encode_all(model, data.x_train).cpu().numpy()
            metrics, extras = quality_metrics(model, data, test, train_codes, config["seed"])
            record = {"model": spec.kind, **{k: v for k, v in config.items() if k != "kind"},
                      "device": str(device), "torch_version": torch.__version__,
                      "train_seconds": round(state.train_seconds, 2), **metrics}
            timings = figures.write_all(spec, model, data, state, extras, staging, config["seed"], say)
            record["figure_seconds"] = timings
            record["eval_seconds"] = round(time.perf_counter() - began - sum(timings.values()), 2)
            record["run_seconds"] = round(time.perf_counter() - run_began, 2)
            record["plots_only"] = bool(args.plots_only)  # then run_seconds timed no training
            record["history"] = state.history
            if not args.plots_only:
                save_checkpoint(staging / "model.pt", model, config, state)
            else:
                shutil.copy2(out / "model.pt", staging / "model.pt")
            (staging / "metrics.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
            _swap_in(staging, out)
        except KeyboardInterrupt:
            if not args.plots_only:
                _save_resume(out, state, config)
            raise
        resume_path(out).unlink(missing_ok=True)
        return record
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _subset(data, n):
    from .data import MNISTTensors
    if n > len(data.x_train):
        raise UserError(f"--train-subset {n} is larger than the {len(data.x_train)} training images")
    return MNISTTensors(data.x_train[:n], data.y_train[:n], data.x_test, data.y_test)


def _save_resume(out, state, config):
    torch.save({"config": config, "state": state.__dict__}, resume_path(out))


def _load_resume(out, spec, args):
    from .training import TrainState
    path = resume_path(out)
    if not path.exists():
        raise UserError(f"--resume: no resume state at {path}; run without --resume to start afresh")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
        config, state = saved["config"], TrainState(**saved["state"])
    except Exception as e:
        raise UserError(f"--resume: {path} is unreadable ({type(e).__name__}); delete it and start afresh") from None
    if (config["kind"], config["latent_dim"]) != (spec.kind, spec.latent_dim):
        raise UserError(f"--resume: {path} holds a {config['kind'].upper()} with a "
                        f"{config['latent_dim']}-D latent, not this script's model")
    if state.epoch > args.epochs:
        raise UserError(f"--resume: the saved run already has {state.epoch} epochs; ask for --epochs ≥ {state.epoch}")
    return state, config


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(spec, description=None, argv=None):
    """Entry point of every script: exit 0 on success, 2 on a user error, 130 on an interrupt."""
    args = build_parser(spec, description).parse_args(argv)
    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    stop = _install_stop_handlers()
    try:
        record = run(spec, args, stop)
    except UserError as e:
        print(f"{spec.script}: error: {e}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        out = args.out.expanduser().absolute()
        if resume_path(out).exists():
            print(f"{spec.script}: interrupted; the last good results in {out} are untouched. "
                  f"Continue with: python Models/{spec.script} --resume {' '.join(_without_resume(argv))}".rstrip(),
                  file=sys.stderr)
        else:
            print(f"{spec.script}: interrupted; the last good results in {out} are untouched.", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
        # Python's exit walks every object torch, torchvision and sklearn made (0.6 s measured);
        # frozen objects are skipped.
        gc.freeze()
    summary = ", ".join(f"{k} {record[k]:.4g}" for k in SUMMARY_KEYS if k in record)
    print(f"{spec.script}: {summary}; results in {args.out}")


def _without_resume(argv):
    return [a for a in (sys.argv[1:] if argv is None else argv) if a != "--resume"]


SUMMARY_KEYS = ("test_mse", "test_bce", "test_neg_elbo", "test_nll_iwae", "knn_accuracy",
                "recon_accuracy", "fid_mnist", "train_seconds")


def _install_stop_handlers():
    """First Ctrl-C or SIGTERM asks the batch loop to stop; a second one stops at once."""
    from .training import StopFlag
    stop = StopFlag()

    def handler(signum, frame):
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = True

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop
