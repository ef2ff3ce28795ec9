"""Training and evaluation loops over tensors that already live on the device.

Batches are slices of one random permutation (no DataLoader, no per-sample Python work), and the
loop never calls ``.item()``: per-batch losses are summed on the device and read once per epoch.
"""
import copy
import ctypes
import math
import sys
import time
from dataclasses import dataclass, field

import torch
from torch.optim.adam import adam
from tqdm import tqdm

from . import UserError
from .backprop import Step, flat_parameter
from .losses import ae_loss, vae_loss


def keep_freed_memory():
    """Ask glibc to keep freed memory for reuse instead of returning it to the OS.

    By default it unmaps or trims freed blocks of a few MB, so each training step's fresh activation
    buffers page-fault again on first touch: profiled on a 2-core EPYC, ``clamp`` on a 512x784 batch
    took 0.9 ms inside the loop against 0.02 ms alone. Raising both thresholds to 1 GiB makes a step
    ~10% faster. A no-op where the C library is not glibc (macOS, Windows).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    return bool(libc.mallopt(m_trim_threshold, 1 << 30) and libc.mallopt(m_mmap_threshold, 1 << 30))


@torch.no_grad()
def init_output_bias(model, x_train):
    """Start the decoder at the mean training image: output bias = logit of each pixel's mean.

    The first epochs then learn digits instead of the background (as in Burda et al.'s IWAE code);
    measured here: the 32-D AE reaches a given test MSE about one epoch sooner.
    """
    p = x_train.mean(0).clamp(1e-3, 1 - 1e-3)
    model.decoder[-1].bias.copy_(torch.log(p) - torch.log1p(-p))


class Adam:
    """Adam (Kingma & Ba, 2015, "Adam: A method for stochastic optimization") on one flat parameter,
    its learning rate following ``schedule``: a linear warm-up, then a cosine decay to zero, one step
    per batch.

    The update is torch's own: ``torch.optim.adam.adam`` is the function torch.optim.Adam calls (the
    fused kernel on CPU and CUDA), so the numbers are torch.optim.Adam + LambdaLR's to the bit. Only
    the bookkeeping is ours, because torch.optim.Optimizer imports torch._dynamo on first use: 0.9 s
    of every training run on a 2-core EPYC.
    """

    betas, eps = (0.9, 0.999), 1e-8

    def __init__(self, param, lr, total_steps, warmup_steps):
        self.param, self.base_lr = param, lr
        self.total, self.warmup = max(1, total_steps), warmup_steps
        self.fused = param.device.type in ("cpu", "cuda") or None   # MPS: torch's default (foreach)
        self.steps = 0
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(param), torch.zeros_like(param)
        # Adam's step counter, where torch.optim.Adam keeps it: beside the parameter when fused
        self.step_count = torch.zeros((), device=param.device if self.fused else "cpu")

    def schedule(self, step):
        """The learning rate's factor at ``step`` (0-based)."""
        if step < self.warmup:
            return (step + 1) / self.warmup
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))))

    @property
    def lr(self):
        """The learning rate of the next step."""
        return self.base_lr * self.schedule(self.steps)

    @torch.no_grad()
    def step(self):
        """Move the parameter along its ``.grad``."""
        beta1, beta2 = self.betas
        adam([self.param], [self.param.grad], [self.exp_avg], [self.exp_avg_sq], [], [self.step_count],
             fused=self.fused, amsgrad=False, beta1=beta1, beta2=beta2, lr=self.lr, weight_decay=0.0,
             eps=self.eps, maximize=False)
        self.steps += 1

    def state_dict(self):
        return {"steps": self.steps, "exp_avg": self.exp_avg.clone(), "exp_avg_sq": self.exp_avg_sq.clone()}

    def load_state_dict(self, state):
        """Continue from ``state_dict()``'s; ValueError for anything else."""
        if not isinstance(state, dict) or set(state) != {"steps", "exp_avg", "exp_avg_sq"} or \
                state["exp_avg"].shape != self.param.shape:
            raise ValueError("not a state of this optimizer")
        self.steps = state["steps"]
        self.exp_avg.copy_(state["exp_avg"])
        self.exp_avg_sq.copy_(state["exp_avg_sq"])
        self.step_count.fill_(state["steps"])


def make_optimizer(model, lr, epochs, steps_per_epoch):
    """``Adam`` over ``backprop.flat_parameter(model)`` (one pass over all weights per step), warmed
    up over the first epoch (at most a tenth of all steps), then cosine-decayed to zero."""
    total = max(1, epochs * steps_per_epoch)
    return Adam(flat_parameter(model), lr, total, min(steps_per_epoch, total // 10))


class StopFlag:
    """Set from a signal handler; the batch loop looks at it between batches."""
    requested = False


class Interrupted(Exception):
    """Training stopped on request; ``snapshot`` is the state after the last whole epoch."""

    def __init__(self, snapshot):
        super().__init__("interrupted")
        self.snapshot = snapshot


def train_epoch(model, optimizer, x_train, batch_size, stop=None, bar=None, amp=None, beta=1.0):
    """One pass over ``x_train`` in random order, minimising rec + ``beta``·KL; returns the mean
    (−ELBO, rec, kl) per image (the true bound, whatever β is).

    ``amp`` is None (float32) or the compute dtype of the matmuls (bfloat16); losses stay float32
    either way. The forward and backward pass are ``backprop.Step``'s.
    """
    model.train()
    step = Step(model, amp)
    n = x_train.shape[0]
    perm = torch.randperm(n, device=x_train.device)
    totals = torch.zeros(3, device=x_train.device)
    for start in range(0, n, batch_size):
        xb = x_train.index_select(0, perm[start:start + batch_size])  # 3x faster than x_train[idx]
        _, rec, kl = step(xb, beta)
        optimizer.step()
        totals += torch.stack((rec + kl, rec, kl)) * xb.shape[0]
        if bar is not None:
            bar.update(1)
        if stop is not None and stop.requested:
            return None
    return (totals / n).tolist()


@torch.no_grad()
def evaluate(model, x, seed=0, batch_size=1000, amp=None):
    """Test-set figures in one pass, with the VAE's noise drawn from its own seeded generator so the
    numbers do not depend on how much training randomness was used before.

    ``amp`` (None: float32) as in ``train_epoch``: the per-epoch monitoring runs in the training
    precision (0.07 s instead of 0.19 s on the 32-D VAE); the final metrics always in float32.

    Returns a dict: loss/rec/kl (nats per image; the VAE's with one z sample per image), mse and
    bce of the deterministic reconstruction (decoded code or posterior mean), and ``codes``.
    """
    model.eval()
    gen = torch.Generator(device=x.device).manual_seed(seed)
    sums = torch.zeros(4, device=x.device, dtype=torch.float64)
    codes = []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size]
        with torch.autocast(x.device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            if model.kind == "vae":
                mu, logvar = (t.float() for t in model.posterior(xb))
                eps = torch.randn(mu.shape, generator=gen, device=x.device)
                _, rec, kl = vae_loss(model.decode(model.sample(mu, logvar, eps)), xb, mu, logvar)
            else:
                mu = model.encode(xb).float()
                rec = kl = torch.zeros((), device=x.device)
            logits = model.decode(mu).float()
        mse = (torch.sigmoid(logits) - xb).pow(2).mean(dim=1).sum()
        _, bce, _ = ae_loss(logits, xb)
        m = xb.shape[0]
        sums += torch.stack((rec * m, kl * m, mse, bce * m)).double()
        codes.append(mu)
    rec, kl, mse, bce = (sums / x.shape[0]).tolist()
    if model.kind != "vae":
        rec = bce
    return {"loss": rec + kl, "rec": rec, "kl": kl, "mse": mse, "bce": bce, "codes": torch.cat(codes)}


def frame_subset(n_test, size=3000):
    """The fixed test images whose codes are kept after every epoch (posterior_evolution.gif)."""
    # clone: a slice would keep (and checkpoints would save) the whole permutation's storage
    return torch.randperm(n_test, generator=torch.Generator().manual_seed(0))[:size].clone()


@torch.no_grad()
def encode_all(model, x, batch_size=10000):
    """Codes (AE) or posterior means (VAE) of every row of ``x``."""
    model.eval()
    return torch.cat([model.encode(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])


@dataclass
class TrainState:
    """Everything needed to continue training exactly where a whole epoch ended."""
    epoch: int = 0
    history: list = field(default_factory=list)
    code_frames: list = field(default_factory=list)  # per-epoch codes of the test images ...
    frame_index: torch.Tensor = None                  # ... at these indices (frame_subset)
    train_seconds: float = 0.0
    model: dict = None
    optimizer: dict = None
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


def _snapshot(state, model, optimizer, device):
    """A deep copy of everything training needs to continue from here."""
    s = copy.copy(state)
    s.history, s.code_frames = list(state.history), list(state.code_frames)
    s.model = copy.deepcopy(model.state_dict())
    s.optimizer = optimizer.state_dict()
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
        frame_index=None, log=print, amp=None, beta=1.0, on_epoch=None):
    """Train for ``epochs`` epochs (continuing ``state`` if given) and return the final TrainState.

    ``progress`` is "bar" (tqdm over batches), "lines" (one line per epoch) or "none".
    ``frame_index`` selects test images whose codes are kept after every epoch (and before the
    first), for the posterior-evolution animation; no extra pass is needed for them. It is kept in
    the state beside the codes, so whoever draws them knows whose codes they are.
    ``beta`` weighs the VAE's KL term in the training objective (the history records the true −ELBO).
    ``on_epoch(state)`` receives the state after every finished epoch (cli saves it for --resume).
    Raises ``Interrupted`` when ``stop`` is set and ``UserError`` if the loss stops being finite.
    """
    device = data.x_train.device
    keep_freed_memory()
    steps = math.ceil(data.x_train.shape[0] / batch_size)
    optimizer = make_optimizer(model, lr, epochs, steps)
    state = state or TrainState()
    if state.model is not None:
        model.load_state_dict(state.model)
        optimizer.load_state_dict(state.optimizer)
        _set_rng_state(state.rng, device)
    else:
        init_output_bias(model, data.x_train)
        state.frame_index = frame_index
        if frame_index is not None:
            state.code_frames.append(_frame(evaluate(model, data.x_test, seed, amp=amp)["codes"], frame_index))
    last_good = _snapshot(state, model, optimizer, device)
    for epoch in range(state.epoch + 1, epochs + 1):
        began = time.perf_counter()
        bar = None
        if progress == "bar":
            bar = tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", leave=False, file=sys.stdout)
        means = train_epoch(model, optimizer, data.x_train, batch_size, stop, bar, amp, beta)
        if bar is not None:
            bar.close()
        if means is None:
            raise Interrupted(last_good)
        if not all(math.isfinite(v) for v in means):
            raise UserError(f"the training loss became {means[0]} in epoch {epoch}; "
                            f"try a smaller --lr (the last good results were kept)")
        h = _record_epoch(state, epoch, means, evaluate(model, data.x_test, seed, amp=amp), began)
        if progress != "none":
            log(f"epoch {epoch:3d}/{epochs}  train {h['train_loss']:.2f}  test {h['test_loss']:.2f} "
                f"nats  test MSE {h['test_mse']:.5f}  {h['seconds']:.1f}s")
        last_good = _snapshot(state, model, optimizer, device)
        if on_epoch is not None:
            on_epoch(last_good)
        if stop is not None and stop.requested:
            raise Interrupted(last_good)
    return last_good
