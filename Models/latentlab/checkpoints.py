"""Every file that holds trained weights or training state, written and read in this one module.

- ``model.pt`` in a results folder: plain ``torch.save`` of ``{"config", "state_dict", "history",
  "train_seconds"}`` (and, where per-epoch test codes were kept, ``"frame_index"``, the indices of those
  test images; the codes themselves are in ``posterior_frames.npy`` beside it). With plain torch::

      ckpt = torch.load("model.pt", weights_only=True)
      c = ckpt["config"]
      model = build_model(c["kind"], c["latent_dim"], c["arch"], c["hidden"], c.get("likelihood", "bernoulli"))
      model.load_state_dict(ckpt["state_dict"])

- ``<results folder>.resume.pt`` beside a results folder: the whole ``TrainState`` after the last
  finished epoch (the model's, Adam's and the scheduler's own ``state_dict()``), for ``--resume``.
- ``lenet_mnist.pt`` in this package: the classifier that judges reconstructions and samples.

Each file is serialised in memory and then written by plain file I/O into a temporary name renamed
over the target, so a full disk raises an ``OSError`` (torch.save's own writer raises a RuntimeError)
and never leaves a half-written file. Problems the user can fix raise ``UserError``.
"""
import dataclasses
import io
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from . import UserError
from .models import LeNet, build_model
from .training import TrainState

MODEL_FILE = "model.pt"
CODE_FRAMES = "posterior_frames.npy"  # per-epoch test posterior means, kept for --plots-only
CLASSIFIER_PATH = Path(__file__).with_name("lenet_mnist.pt")
RESUME_FORMAT = 3   # raised whenever TrainState's content changes meaning


def write_atomically(path, data):
    """``path`` holds ``data`` (bytes) whole, or is left as it was: written into ``path.tmp``, then renamed."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_torch(obj, path):
    """``torch.save(obj, path)``, atomically and with a real OSError on a full disk."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_atomically(path, buffer.getvalue())


def save_numpy(array, path):
    buffer = io.BytesIO()
    np.save(buffer, array)
    write_atomically(path, buffer.getvalue())


# --------------------------------------------------------------------------- model.pt

def model_config(config):
    """The part of a run's config that rebuilds its model: (its name in ``models.MODELS``, latent size,
    arch, hidden sizes, likelihood; those written before the likelihood was a choice are Bernoulli)."""
    return (config["kind"], config["latent_dim"], config.get("arch", "mlp"), config["hidden"],
            config.get("likelihood", "bernoulli"))


def identity(config):
    """What a run must match to be continued or redrawn: (model name, latent size, arch, likelihood)."""
    name, latent_dim, arch, _, likelihood = model_config(config)
    return name, latent_dim, arch, likelihood


def save_model(folder, model, config, state):
    """Write ``model.pt`` (and ``posterior_frames.npy`` when per-epoch codes were kept) into ``folder``."""
    ckpt = {"config": config, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "history": state.history, "train_seconds": state.train_seconds}
    if state.frame_index is not None:
        ckpt["frame_index"] = state.frame_index
    save_torch(ckpt, folder / MODEL_FILE)
    if state.code_frames:
        save_numpy(np.stack([f.numpy() for f in state.code_frames]), folder / CODE_FRAMES)


def copy_model(source, folder):
    """Carry ``model.pt`` (and its per-epoch codes) unchanged from ``source`` into ``folder``."""
    for name in (MODEL_FILE, CODE_FRAMES):
        if (source / name).exists():
            shutil.copy2(source / name, folder / name)


def _describe(name, latent_dim, arch, likelihood):
    other = "" if likelihood == "bernoulli" else f", {likelihood}"
    return f"{name.upper()} ({arch}{other}) with a {latent_dim}-D latent"


def load_model(path, spec=None, device="cpu", arch=None, likelihood=None):
    """Rebuild the model saved by ``save_model``; returns (model in eval mode, checkpoint dict).

    With ``spec`` (and ``arch``, ``likelihood``) given, refuses a checkpoint of another model, latent
    size, architecture or likelihood.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"no checkpoint at {path}; train first (run without --plots-only)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if "state_dict" not in ckpt:
            raise UserError(f"{path} was written by an older version of this repo; run the script again "
                            f"(without --plots-only) to rewrite it")
        name, latent_dim, saved_arch, hidden, saved_likelihood = model_config(ckpt["config"])
        saved = (name, latent_dim, saved_arch, saved_likelihood)
        wanted = (spec.model.name, spec.latent_dim, arch or saved_arch, likelihood or saved_likelihood) if spec else saved
        if saved != wanted:
            raise UserError(f"{path} holds the {_describe(*saved)}, not this run's {_describe(*wanted)}")
        model = build_model(name, latent_dim, saved_arch, hidden, saved_likelihood)
        model.load_state_dict(ckpt["state_dict"])
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"{path} is not a readable checkpoint of this model ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:120] if str(e) else ''}); run the script again to rewrite it") from None
    return model.to(device, memory_format=torch.channels_last).eval(), ckpt  # as cli trains it


def load_run(folder, spec, device, arch=None, likelihood=None):
    """(model, config, finished TrainState) of the run whose results are in ``folder``."""
    model, ckpt = load_model(folder / MODEL_FILE, spec, device, arch, likelihood)
    config = {**ckpt["config"], "likelihood": model_config(ckpt["config"])[4]}
    state = TrainState(epoch=config["epochs"], history=ckpt["history"], train_seconds=ckpt["train_seconds"],
                       frame_index=ckpt.get("frame_index"))
    frames = folder / CODE_FRAMES
    if state.frame_index is not None and frames.exists():
        try:
            state.code_frames = list(torch.from_numpy(np.load(frames)))
        except (OSError, ValueError) as e:
            raise UserError(f"{frames} is unreadable ({type(e).__name__}); train again to rewrite it") from None
    return model, config, state


# --------------------------------------------------------------------------- resume state

def resume_path(out):
    return out.parent / f"{out.name}.resume.pt"


def save_resume(out, state, config):
    """Written after every epoch, atomically, so a run killed at any moment leaves the state of its
    last finished epoch."""
    save_torch({"format": RESUME_FORMAT, "config": config, "state": state.__dict__}, resume_path(out))


def load_resume(out, spec, epochs, arch="mlp", likelihood="bernoulli"):
    """(TrainState, config) saved by an interrupted run of ``spec`` into ``out``, to continue up to
    ``epochs``."""
    path = resume_path(out)
    if not path.exists():
        raise UserError(f"--resume: no resume state at {path}; run without --resume to start afresh")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        version, config, fields = saved.get("format"), saved["config"], dict(saved["state"])
    except Exception as e:
        raise UserError(f"--resume: {path} is unreadable ({type(e).__name__}); delete it and start afresh") from None
    if version != RESUME_FORMAT or set(fields) != {f.name for f in dataclasses.fields(TrainState)}:
        raise UserError(f"--resume: {path} was saved by an older version of this repo; "
                        f"run without --resume to start afresh")
    state = TrainState(**fields)
    saved, wanted = identity(config), (spec.model.name, spec.latent_dim, arch, likelihood)
    if saved != wanted:
        raise UserError(f"--resume: {path} holds the {_describe(*saved)}, not this run's {_describe(*wanted)}")
    if state.epoch > epochs:
        raise UserError(f"--resume: the saved run already has {state.epoch} epochs; ask for --epochs ≥ {state.epoch}")
    return state, config


# --------------------------------------------------------------------------- the judging classifier

def save_classifier(net, path=CLASSIFIER_PATH):
    save_torch({k: v.cpu() for k, v in net.state_dict().items()}, path)


def load_classifier(device, path=CLASSIFIER_PATH):
    """The committed LeNet in eval mode, channels-last (faster convolutions on CPU)."""
    net = LeNet()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.to(device, memory_format=torch.channels_last).eval()
