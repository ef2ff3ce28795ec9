"""Every file that holds trained weights or training state, written and read in this one module.

- ``model.pt`` in a results folder: the config that rebuilds the model, its weights (packed losslessly
  by ``pack_weights``), the training history and, where per-epoch test codes were kept, the indices of
  those test images; the codes themselves are in ``posterior_frames.npy`` beside it. Enough for ``--plots-only`` to redraw
  everything without training.
- ``<results folder>.resume.pt`` beside a results folder: the whole ``TrainState`` after the last
  finished epoch, for ``--resume``.
- ``lenet_mnist.pt`` in this package: the classifier that judges reconstructions and samples.

Problems the user can fix (missing, unreadable or mismatched files) raise ``UserError``.
"""
import dataclasses
import os
import shutil
import zlib
from pathlib import Path

import numpy as np
import torch

from . import UserError
from .models import LeNet, build_model
from .training import TrainState

MODEL_FILE = "model.pt"
CODE_FRAMES = "posterior_frames.npy"  # per-epoch test posterior means, kept for --plots-only
CLASSIFIER_PATH = Path(__file__).with_name("lenet_mnist.pt")


# --------------------------------------------------------------------------- model.pt

def pack_weights(state_dict):
    """The float32 weights, losslessly: byte-shuffled (the four bytes of every number in four planes,
    so the sign-and-exponent plane is nearly constant) and deflated. 14% smaller than torch.save's
    raw bytes, which keeps model.pt under 4 MiB. zlib level 1: 0.06 s; level 9 saves 1% more in 0.44 s."""
    flat = torch.cat([v.detach().cpu().reshape(-1) for v in state_dict.values()]).numpy().astype("<f4")
    planes = flat.view(np.uint8).reshape(-1, 4).T.tobytes()
    return {"names": list(state_dict), "shapes": [list(v.shape) for v in state_dict.values()],
            "deflated": torch.frombuffer(bytearray(zlib.compress(planes, 1)), dtype=torch.uint8)}


def unpack_weights(packed):
    """The state dict ``pack_weights`` packed, bit for bit."""
    planes = np.frombuffer(zlib.decompress(packed["deflated"].numpy().tobytes()), dtype=np.uint8)
    flat = torch.from_numpy(planes.reshape(4, -1).T.copy().view("<f4").ravel())
    sizes = [int(np.prod(shape)) for shape in packed["shapes"]]
    parts = flat.split(sizes)
    return {name: part.view(shape) for name, shape, part in zip(packed["names"], packed["shapes"], parts)}


def save_model(folder, model, config, state):
    """Write ``model.pt`` (and ``posterior_frames.npy`` when per-epoch codes were kept) into ``folder``."""
    ckpt = {"config": config, "weights": pack_weights(model.state_dict()),
            "history": state.history, "train_seconds": state.train_seconds}
    if state.frame_index is not None:
        ckpt["frame_index"] = state.frame_index
    torch.save(ckpt, folder / MODEL_FILE)
    if state.code_frames:
        np.save(folder / CODE_FRAMES, np.stack([f.numpy() for f in state.code_frames]))


def copy_model(source, folder):
    """Carry ``model.pt`` (and its per-epoch codes) unchanged from ``source`` into ``folder``."""
    for name in (MODEL_FILE, CODE_FRAMES):
        if (source / name).exists():
            shutil.copy2(source / name, folder / name)


def load_model(path, spec=None, device="cpu"):
    """Rebuild the model saved by ``save_model``; returns (model in eval mode, checkpoint dict).

    With ``spec`` given, refuses a checkpoint of another model kind or latent size.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"no checkpoint at {path}; train first (run without --plots-only)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        config = ckpt["config"]
        model = build_model(config["kind"], config["latent_dim"], config["hidden"])
        if spec is not None and (config["kind"], config["latent_dim"]) != (spec.kind, spec.latent_dim):
            raise UserError(f"{path} holds a {config['kind'].upper()} with a {config['latent_dim']}-D latent, "
                            f"not this script's {spec.kind.upper()} with a {spec.latent_dim}-D latent")
        # "state_dict": model.pt files written before the weights were packed
        model.load_state_dict(ckpt["state_dict"] if "state_dict" in ckpt else unpack_weights(ckpt["weights"]))
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"{path} is not a readable checkpoint of this repo ({type(e).__name__})") from None
    return model.to(device).eval(), ckpt


def load_run(folder, spec, device):
    """(model, config, finished TrainState) of the run whose results are in ``folder``."""
    model, ckpt = load_model(folder / MODEL_FILE, spec, device)
    config = ckpt["config"]
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
    """Written after every epoch, atomically (a temporary file renamed over the last one), so a run
    killed at any moment leaves the state of its last finished epoch."""
    path = resume_path(out)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"config": config, "state": state.__dict__}, tmp)
    os.replace(tmp, path)


def load_resume(out, spec, epochs):
    """(TrainState, config) saved by an interrupted run of ``spec`` into ``out``, to continue up to
    ``epochs``."""
    path = resume_path(out)
    if not path.exists():
        raise UserError(f"--resume: no resume state at {path}; run without --resume to start afresh")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
        config, fields = saved["config"], dict(saved["state"])
    except Exception as e:
        raise UserError(f"--resume: {path} is unreadable ({type(e).__name__}); delete it and start afresh") from None
    if set(fields) != {f.name for f in dataclasses.fields(TrainState)}:   # e.g. a torch.optim scheduler's state
        raise UserError(f"--resume: {path} was saved by an older version of this repo; "
                        f"run without --resume to start afresh")
    state = TrainState(**fields)
    if (config["kind"], config["latent_dim"]) != (spec.kind, spec.latent_dim):
        raise UserError(f"--resume: {path} holds a {config['kind'].upper()} with a "
                        f"{config['latent_dim']}-D latent, not this script's model")
    if state.epoch > epochs:
        raise UserError(f"--resume: the saved run already has {state.epoch} epochs; ask for --epochs ≥ {state.epoch}")
    return state, config


# --------------------------------------------------------------------------- the judging classifier

def save_classifier(net, path=CLASSIFIER_PATH):
    torch.save({k: v.cpu() for k, v in net.state_dict().items()}, path)


def load_classifier(device, path=CLASSIFIER_PATH):
    """The committed LeNet in eval mode, channels-last (3x faster convolutions on CPU)."""
    net = LeNet()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.to(device, memory_format=torch.channels_last).eval()
