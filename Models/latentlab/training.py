"""Training and evaluation loops over tensors that already live on the device.

One training step is the textbook one: the model's loss of a batch (``model.loss``: its forward pass
and its loss from ``losses``), ``loss.backward()``, ``torch.optim.Adam``, then the learning-rate
schedule's step. Batches are slices of one random permutation (no DataLoader, no per-sample Python
work), and the loop never calls ``.item()``: per-batch losses are summed on the device and read once
per epoch.
"""
import copy
import math
import sys
import time
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from . import UserError
from .precision import autocast


def warmup_cosine(total_steps, warmup_steps):
    """The learning rate's factor at each step (0-based): a linear warm-up over ``warmup_steps``, then a
    cosine decay to zero at ``total_steps`` (Loshchilov & Hutter, 2017, "SGDR", without restarts)."""
    def factor(step):
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return factor


def make_optimizer(model, lr, epochs, steps_per_epoch):
    """(optimizer, scheduler): Adam (Kingma & Ba, 2015) over the model's parameters, fused into one
    kernel where torch has it, and a ``LambdaLR`` stepped once per batch: warmed up over the first epoch
    (at most a tenth of all steps), then cosine-decayed to zero."""
    total = max(1, epochs * steps_per_epoch)
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=device.type in ("cpu", "cuda") or None)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, min(steps_per_epoch, total // 10)))
    return optimizer, scheduler


def kl_warmup(beta, warmup_steps):
    """β at each optimizer step (0-based): rising linearly from 0 to ``beta`` over ``warmup_steps`` steps,
    then ``beta``: KL annealing (Bowman et al., 2016) or warm-up (Sønderby et al., 2016), which lets the
    decoder learn to use z before the KL term pulls q(z|x) onto the prior."""
    def at(step):
        return beta * min(1.0, (step + 1) / warmup_steps) if warmup_steps else beta
    return at


class StopFlag:
    """Set from a signal handler; the batch loop looks at it between batches."""
    requested = False


class Interrupted(Exception):
    """Training stopped on request; ``snapshot`` is the state after the last whole epoch."""

    def __init__(self, snapshot):
        super().__init__("interrupted")
        self.snapshot = snapshot


def train_epoch(model, optimizer, scheduler, x_train, batch_size, stop=None, bar=None, amp=None, beta=1.0,
                y_train=None):
    """One pass over ``x_train`` (and its labels ``y_train``, which a conditional model reads) in random
    order, minimising rec + β·KL; returns the mean (−ELBO, rec, kl) per image (the true bound, whatever β
    is). ``beta``: a number, or β as a function of the step (``kl_warmup``), the scheduler's count of
    steps so far.

    ``amp``: None (float32), or the dtype the layers run in where the hardware has it (``precision``).
    """
    model.train()
    n, device = x_train.shape[0], x_train.device
    perm = torch.randperm(n, device=device)
    totals = torch.zeros(3, device=device)
    for start in range(0, n, batch_size):
        idx = perm[start:start + batch_size]
        xb = x_train.index_select(0, idx)  # faster than x_train[idx]
        yb = None if y_train is None else y_train.index_select(0, idx)
        with autocast(model, amp):
            loss, rec, kl = model.loss(xb, beta(scheduler.last_epoch) if callable(beta) else beta, y=yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        totals += torch.stack((rec + kl, rec, kl)).detach() * xb.shape[0]
        if bar is not None:
            bar.update(1)
        if stop is not None and stop.requested:
            return None
    return (totals / n).tolist()


@torch.no_grad()
def evaluate(model, x, seed=0, batch_size=1000, amp=None, y=None):
    """Test-set figures in one pass, with the VAE's noise drawn from its own seeded generator so the
    numbers do not depend on how much training randomness was used before.

    ``amp`` (None: float32) as in ``train_epoch``: the per-epoch monitoring runs in the training
    precision (faster); the final metrics always in float32.

    ``y``: the labels of ``x``, for a conditional model. Returns a dict: loss/rec/kl (nats per image: the
    model's loss terms, a variational model's with one z sample per image), mse and bce of the deterministic
    reconstruction (the decoded code), and ``codes``.
    """
    model.eval()
    gen = torch.Generator(device=x.device).manual_seed(seed)
    sums = torch.zeros(4, device=x.device, dtype=torch.float64)
    codes = []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size]
        yb = None if y is None else y[start:start + batch_size]
        with autocast(model, amp):
            code = model.encode(xb, yb)
            logits = model.decode(code, yb)
            bce = -model.log_likelihood(xb, logits).mean()
            # an autoencoder's loss is this very reconstruction: no second pass for it
            _, rec, kl = (model.loss(xb, generator=gen, y=yb) if model.variational
                          else (bce, bce, torch.zeros_like(bce)))
        mse = (model.likelihood.mean(logits) - xb).pow(2).mean(dim=1).sum()
        m = xb.shape[0]
        sums += torch.stack((rec * m, kl * m, mse, bce * m)).double()
        codes.append(code)
    rec, kl, mse, bce = (sums / x.shape[0]).tolist()
    return {"loss": rec + kl, "rec": rec, "kl": kl, "mse": mse, "bce": bce, "codes": torch.cat(codes)}


def frame_subset(n_test, size=3000):
    """The fixed test images whose codes are kept after every epoch (posterior_evolution.gif)."""
    # clone: a slice would keep (and checkpoints would save) the whole permutation's storage
    return torch.randperm(n_test, generator=torch.Generator().manual_seed(0))[:size].clone()


@torch.no_grad()
def encode_all(model, x, y=None, batch_size=10000):
    """Codes (AE) or posterior means (VAE) of every row of ``x`` (with its label in ``y``, for a conditional
    model)."""
    model.eval()
    return torch.cat([model.encode(x[i:i + batch_size], None if y is None else y[i:i + batch_size])
                      for i in range(0, x.shape[0], batch_size)])


@dataclass
class TrainState:
    """Everything needed to continue training exactly where a whole epoch ended."""
    epoch: int = 0
    history: list = field(default_factory=list)
    code_frames: list = field(default_factory=list)  # per-epoch codes of the test images ...
    frame_index: torch.Tensor = None                  # ... at these indices (frame_subset)
    train_seconds: float = 0.0
    model: dict = None       # the three state_dicts: model.state_dict(), ...
    optimizer: dict = None   # ... torch.optim.Adam's ...
    scheduler: dict = None   # ... and the LambdaLR's
    rng: dict = None


def _frame(codes, frame_index):
    """The kept codes of one epoch, in float16: what posterior_frames.npy stores, so --plots-only
    redraws the very same GIF as the training run."""
    return codes[frame_index].cpu().half()


def _rng_state(device):
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state, device):
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def _snapshot(state, model, optimizer, scheduler, device):
    """A deep copy of everything training needs to continue from here (a ``state_dict`` holds
    references to the live tensors)."""
    s = copy.copy(state)
    s.history, s.code_frames = list(state.history), list(state.code_frames)
    s.model = copy.deepcopy(model.state_dict())
    s.optimizer = copy.deepcopy(optimizer.state_dict())
    s.scheduler = copy.deepcopy(scheduler.state_dict())
    s.rng = _rng_state(device)
    return s


def _record_epoch(state, epoch, means, test, began):
    """Append the epoch's numbers (and kept codes) to ``state``; returns its history entry."""
    state.train_seconds += time.perf_counter() - began
    state.epoch = epoch
    state.history.append({
        "epoch": epoch, "train_loss": means[0], "train_rec": means[1], "train_kl": means[2],
        "test_loss": test["loss"], "test_rec": test["rec"], "test_kl": test["kl"],
        "test_mse": test["mse"], "seconds": round(state.train_seconds, 3),
    })
    if state.frame_index is not None:
        state.code_frames.append(_frame(test["codes"], state.frame_index))
    return state.history[-1]


def fit(model, data, epochs, batch_size, lr, seed=0, state=None, stop=None, progress="lines",
        frame_index=None, log=print, amp=None, beta=1.0, on_epoch=None, beta_warmup=0):
    """Train for ``epochs`` epochs (continuing ``state`` if given) and return the final TrainState.

    ``progress`` is "bar" (tqdm over batches), "lines" (one line per epoch) or "none".
    ``frame_index`` selects test images whose codes are kept after every epoch (and before the
    first), for the posterior-evolution animation; no extra pass is needed for them. It is kept in
    the state beside the codes, so whoever draws them knows whose codes they are.
    ``beta`` weighs the VAE's KL term in the training objective (the history records the true −ELBO),
    reached after a linear warm-up over the first ``beta_warmup`` epochs (``kl_warmup``).
    ``on_epoch(state)`` receives the state after every finished epoch (cli saves it for --resume).
    Raises ``Interrupted`` when ``stop`` is set and ``UserError`` if the loss stops being finite.
    """
    device = data.x_train.device
    steps = math.ceil(data.x_train.shape[0] / batch_size)
    state = state or TrainState()
    if state.model is not None:
        model.load_state_dict(state.model)
    optimizer, scheduler = make_optimizer(model, lr, epochs, steps)
    if state.model is not None:
        optimizer.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
        _set_rng_state(state.rng, device)
    else:
        model.init_output_bias(data.x_train)
        state.frame_index = frame_index
        if frame_index is not None:
            state.code_frames.append(_frame(evaluate(model, data.x_test, seed, amp=amp, y=data.y_test)["codes"],
                                            frame_index))
    last_good = _snapshot(state, model, optimizer, scheduler, device)
    for epoch in range(state.epoch + 1, epochs + 1):
        began = time.perf_counter()
        bar = None
        if progress == "bar":
            bar = tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", leave=False, file=sys.stdout)
        means = train_epoch(model, optimizer, scheduler, data.x_train, batch_size, stop, bar, amp,
                            kl_warmup(beta, beta_warmup * steps), data.y_train)
        if bar is not None:
            bar.close()
        if means is None:
            raise Interrupted(last_good)
        if not all(math.isfinite(v) for v in means):
            raise UserError(f"the training loss became {means[0]} in epoch {epoch}; "
                            f"try a smaller --lr (the last good results were kept)")
        h = _record_epoch(state, epoch, means, evaluate(model, data.x_test, seed, amp=amp, y=data.y_test), began)
        if progress != "none":
            log(f"epoch {epoch:3d}/{epochs}  train {h['train_loss']:.2f}  test {h['test_loss']:.2f} "
                f"nats  test MSE {h['test_mse']:.5f}  {h['seconds']:.1f}s")
        last_good = _snapshot(state, model, optimizer, scheduler, device)
        if on_epoch is not None:
            on_epoch(last_good)
        if stop is not None and stop.requested:
            raise Interrupted(last_good)
    return last_good
