"""Mixed precision, kept out of the model, the loss and the step: where the hardware runs bfloat16 in
hardware (``cli.pick_precision``), ::

    with autocast(model, torch.bfloat16):
        loss, rec, kl = model.loss(x, beta)

runs the encoder's and the decoder's layers in bfloat16 (``torch.autocast``) and hands their outputs to
the rest as float32, so the latent, the KL and log p(x|z) are computed as in a float32 run. Parameters,
gradients and Adam stay float32. ``dtype`` None: plain float32, nothing changed. docs/performance.md
has the measurements.
"""
from contextlib import contextmanager

import torch


def _as_float32(module, inputs, output):
    return output.float()


@contextmanager
def autocast(model, dtype):
    """The block runs ``model``'s encoder and decoder in ``dtype`` (None: as they are)."""
    if dtype is None:
        yield
        return
    hooks = [net.register_forward_hook(_as_float32) for net in (model.encoder, model.decoder)]
    try:
        with torch.autocast(next(model.parameters()).device.type, dtype=dtype):
            yield
    finally:
        for hook in hooks:
            hook.remove()
