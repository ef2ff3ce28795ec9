"""How fast this repo trains and draws, against the machine's peak and the original scripts' loop.

Prints one table per section; all sections take about 4 minutes on a 2-core CPU.

    python benchmarks/train_speed.py [--device cpu] [--skip-original] [--sections 1,2,7] [--repeats 3]

1. float32 (and bfloat16) matmul peak of this machine with the same torch and thread count;
2. for each default model: training images/s, achieved GFLOP/s (forward + backward FLOPs of the
   linear layers) and its share of both peaks; beside it, the ceiling: the same step's matmuls alone
   (forward, input and weight gradients at the model's shapes, nothing else), as a share of the peak,
   and the same with Adam's step after each: what no rewrite of the rest of the step can beat;
3. the original training loop (DataLoader + ToTensor, batch 32, 784-128-z MLPs): seconds per epoch;
4. training seconds for our default model to reach the original's test MSE after its 100 epochs,
   against 100 x the original's epoch time;
5. seconds per GIF;
6. ``--plots-only`` of each script on a copy of its committed results: wall seconds of the whole
   command (interpreter start and imports included), and the metrics' and figures' shares;
7. each script with its defaults, end to end into a scratch folder: wall seconds and the train /
   evaluation / figures split (target: 45 s per script on a 2-core CPU); with ``--repeats N``, the run
   with the median wall time of N, the scripts taking turns;
8. a torch.profiler trace of 100 VAE 32-D training steps: the share of CPU time spent converting
   dtypes (aten::copy_ and aten::_to_copy: the weights' cast and the activations' casts around the
   float32 loss), and the matmuls' share.

Tried and measured for the bf16 training step (VAE 32-D, batch 256, 2-core AMD EPYC with
AVX512-BF16 and no AMX; bf16 matmul peak 885 GFLOP/s; ms per 256 images, lower is better):
- autocast as before: 5.99 ms (245 GFLOP/s, 28% of the bf16 peak); casts 5-7% of CPU time here (45%
  on an AMX Xeon, where the matmuls themselves are 5x faster);
- torch's binary_cross_entropy_with_logits spends 2.2 ms of a 4.3 ms step at batch 512 in log1p,
  which is not vectorised on CPU: a hand-fused Bernoulli NLL (softplus through sigmoid, exact
  gradient sigmoid(l) - x) gives 4.42 ms (332 GFLOP/s), the same training curve to 4e-8 in test MSE.
  Kept;
- glibc's allocator returning freed activation buffers to the OS, so each step page-faults its fresh
  buffers: mallopt of the trim and mmap thresholds, 4.00 -> 3.64 ms at batch 512. Kept
  (``training.keep_freed_memory``);
- bf16 parameters with float32 master weights in the optimiser (no autocast casts): 4.09 ms vs 4.05
  ms for autocast at batch 512, 3.38 vs 3.41 at 1024: within noise on this CPU, not kept;
- batch 512 / 1024: 3.64-4.05 / 3.41 ms per 256 images (batch 512: see README for its quality);
- torch.compile of the loss: no gain after a 17 s compile, more than a default run saves; not kept;
- per-epoch test evaluation in the training precision and in batches of 1,000: 0.07 s instead of
  0.25 s per epoch on the VAE 32-D (the final metrics stay float32). Kept;
- the IWAE bound (k = 100, 1.07 TFLOP of decoding) in bf16: 2.9 s instead of 6.7 s, but it moves the
  bound by -0.10 to -0.13 nats: not kept.
Second round (VAE 2-D unless said, batch 256; 4.47 ms per step with autocast, of which the matmuls
2.08 ms; the same ops take 3-10x longer inside the step than alone, e.g. sigmoid of the 256x784
logits 70 us against 23 us, with no page faults left: the two OpenMP threads wake and sync per op):
- all weights in one flat float32 buffer, cast to bfloat16 in one copy per step, gradients
  accumulated in one flat bf16 buffer and cast back in one copy (torch.func.functional_call over the
  bf16 copies, no autocast): 4.74 ms against 4.48 ms for autocast in the same process; not kept;
- GOMP_SPINCOUNT (how long OpenMP workers spin before sleeping) 1e7 instead of libgomp's default:
  3.7-4.5 ms either way over 3 alternated pairs, within this shared VM's noise; not kept (the
  passive policy, threads sleeping at once, doubles the step to 8.6 ms);
- batch 512 with the learning rate scaled by sqrt(2) or 2, batch 1024 with 2.8x (VAE 32-D, seed 0,
  30 epochs): -ELBO 100.1 / 100.9 / 104.3 against 97.58 at batch 256; train 29 / 29 / 24 s
  against 34 s. The model is limited by its number of steps; batch 256 stays;
- the exact likelihood of the VAE 2-D (evaluation): each block decodes only the cells some image
  chose, the 3x3 growth of the chosen cells is 9 shifted ORs instead of max_pool2d on a float copy
  (0.15 -> 0.03 s per 1,000 images), the error measurement reuses the main pass on its 500 images,
  and true_posterior.png decodes the coarse grid once for its 8 digits (8 modes: 1.0 -> 0.1 s):
  exact likelihood 10.9 -> 8.3 s, the VAE 2-D's evaluation 18.8 -> 15.3 s, same values to 4e-9 nats.
  Kept.
Third round (same machine; ms per step at batch 256, each pair measured in alternation, best of 3):
- the forward and backward pass written out (``backprop.Step``): all weights in one flat float32
  buffer cast to bf16 in one copy per step, activations kept in bf16, the gradient written into one
  flat buffer by ``mm(..., out=)`` and cast back in one copy, no autograd graph, no autocast. With
  Adam still over the 12 tensors: VAE 32-D 3.87 against 4.39 ms for autograd + autocast; with Adam
  over one flat parameter (0.30 instead of 0.66 ms a step), two alternated pairs: AE 2-D 4.08 and
  3.81 / VAE 2-D 4.09 and 3.95 / VAE 32-D 4.20 and 3.96 ms against 4.66 and 4.91 / 5.08 and 4.85 /
  5.14 and 4.40. Kept; the full benchmark then gives 42-45% of the bf16 peak (31-35% before). Its
  gradient equals autograd's to 1e-16 in float64 (tests/test_backprop.py). In float32 (CPUs without
  bf16): 8.13 / 8.28 / 8.51 ms against 8.13 / 8.58 / 8.74, not slower. Casts: 9% of CPU time (section 8);
- batches by ``index_select`` instead of ``x[idx]``: 37 against 115 us per batch. Kept;
- what is left: the step's matmuls alone at these shapes run at 580-750 GFLOP/s (the 784x512 layer
  749, the 512x256 ones 583-616), 65-80% of the 2048^2 peak, 2.0 ms of the 3.4 ms step; Adam's one
  pass over 17 MB of weights and moments 0.3-0.45 ms. 60% of the peak would leave 0.3 ms for all of
  the rest, Adam included; not reached;
- the IWAE bound with the decoder's two hidden layers in bf16 and the last in float32: 15% faster,
  moves the bound by +0.0012 nats (all in bf16: -0.06 to -0.07 nats, 2.5x faster); not kept: a
  definition that would differ between CPUs with and without bf16, for 0.9 s;
- the exact likelihood's log-sum-exp in float32 instead of float64: 3.71 -> 3.59 s, values moved by
  up to 1.5e-5 nats per image; not kept;
- the quadrature's error measured on 200 or 100 images instead of 500: 4.1 / 3.1 s instead of 5.1 s
  (the finer grid's decoding of the cells the images share dominates), the bound 0.0006 / 0.0012
  instead of 0.0005 nats; not kept;
- the exact likelihood's fine grid in blocks of 4x4 or 6x6 coarse cells instead of 8x8: 3.25 / 3.39 s
  against 3.63 s on 10,000 images, the finer check on 500 images 2.95 / 2.92 against 2.86 s: within
  this machine's noise; not kept.
Fourth round (same machine; the VAE 2-D script was the one default run over 45 s):
- torch.optim.Optimizer imports torch._dynamo on first use (``add_param_group``, ``state_dict``), 0.9 s
  of every training run (1.6 s of a profiled one): ``training.Adam`` calls ``torch.optim.adam.adam``, the
  function torch.optim.Adam calls, fused, on the flat parameter, with the same cosine schedule: the
  same parameters to the bit as torch.optim.Adam + LambdaLR (tests/test_training.py), no dynamo. Kept;
- the quadrature error's wider-range check summed all 500 images again on the wider grid (1.1 s); only
  the images whose chosen cells reach the added border are summed again (one of the first 500 test
  digits, a 7 with its posterior mode at z1 = 5.6): 0.4 s, the same value. Kept;
- points decoded in chunks of 2,048 instead of all at once, so each chunk's logits stay in the cache:
  one 161 x 161 true-posterior grid 0.15 s instead of 0.27 s in a fresh process, but 0.145 s instead of
  0.16 s once the allocator keeps freed memory, as it does in a run (true_posterior.png: 2.1-2.3 s
  either way); the same values to the bit. Kept, for the small gain;
- the exact likelihood's fine grid in blocks of 4 x 4 coarse cells instead of 8 x 8, measured again in
  3 alternated repetitions: 1.80-1.82 s against 2.08 s on 10,000 images (each image multiplies only
  against the cells its block's images chose: less waste), values moved by at most 5e-8 nats per image;
  the finer check on 500 images 2.58-2.65 s either way. Kept;
- model.pt deflated at zlib level 1 instead of 9: 0.06 s instead of 0.44 s, 3.51 MiB instead of 3.47.
  Kept;
- refining, in the finer check, only the cells holding more than e^-20 of an image's likelihood: the
  cells to decode shrink from 4,350 to 4,106 (their union over 500 images is what costs); not kept;
- two Python threads each running half a batch with one OpenMP thread (data parallel over the 2
  cores): 3.2-3.7 ms per step against 2.8-2.9 ms for one step of 256 on two threads; not kept;
- in-place ReLU in the IWAE decoder: 2.36-2.40 s against 2.41-2.42 s on 4,000 images; IWAE chunks of
  5, 10, 20 or 40 images: 2.43-2.55 s either way; per-epoch evaluation in batches of 1,000 to 10,000:
  68-73 ms either way: within noise, not kept;
- 26 epochs instead of 30 for the VAE 2-D (seeds 0-4, paired with the 30-epoch runs): train 7 s
  shorter, but -ELBO +0.32 +- 0.27, test MSE +0.0002 +- 0.0001 and the exact NLL +0.75 +- 0.10 nats
  worse (beyond its seed spread of 0.29); not kept;
- what is left of a step (profiled, VAE 2-D, batch 256): matmuls 1.97 of 3.03 ms of op time (83% of
  the bf16 peak), Adam 0.22 ms, casts 0.19 ms; the ~95 torch calls of a step cost 0.25 ms by
  themselves (a Step of a model with 8-unit hidden layers on 8 images), and the Bernoulli loss and its
  gradient over the 256 x 784 logits ~0.6 ms.
Fifth round (same machine; the VAE 2-D script at 45-49 s, the VAE 32-D at 39-46 s):
- the quadrature's error check summed a grid of half the step (100 points a coarse cell, 4,350 cells
  for 500 images): 3.0 s. It now sums a rougher grid, 3 points a cell side (step 0.0333 instead of
  0.02), whose difference bounds the error whenever it falls at least as step^1.4: 0.55 s. The bound
  reported becomes 0.0073 nats instead of the halved step's 0.0004 (the error falls faster than
  step^1.4, so the bound is ~17x loose, and 40x below the exact NLL's seed spread). Kept;
- ``softplus_sum`` took the product of each 28 adjacent pixels' factors: torch reduces a short
  contiguous last axis with a scalar loop. Across 16 slices of 49 pixels instead, the products are
  vectorised: 33 against 69 us for 256 images, 183 against 454 us for 2,000 (IWAE chunks). The loss's
  gradient does not use it: training unchanged to the bit, reported losses moved by float rounding
  (< 2e-6 nats). Kept;
- Adam through ``torch._fused_adam_`` directly instead of ``torch.optim.adam.adam``: 184-191 against
  196-198 us a step, 0.07 s a run; not kept;
- the Bernoulli loss on one OpenMP thread (no wake-up and sync of the second): 4.09-4.36 against
  3.79-4.10 ms a step; not kept;
- the logits straight out of the last matmul in float32 (``torch.mm(..., out_dtype=torch.float32)``,
  skipping the bf16 rounding and a 256 x 784 conversion): not implemented on CPU in torch 2.14;
- true_posterior.png (2.0-2.2 s): its 8 posterior grids of 161 x 161 points are 1.2 s of float32
  decoding at the fp32 peak, saving 0.5 s; ``bbox_inches="tight"`` removed: within noise; not changed;
- the IWAE bound (5.9 s on 10,000 images): the matmuls are 84% of it at 214 GFLOP/s, the fp32 peak;
  only a lower precision would make it cheaper (third round), not changed;
- what is left of a step (torch.profiler, VAE 2-D, 200 steps): 2.93 ms of op time, matmuls 1.91 ms,
  Adam 0.25 ms, dtype copies 0.20 ms (four 256 x 784 conversions at 42 us each inside the step, 8 us
  alone, and the two flat casts of the weights and gradient at 72 us each).
Sixth round (same machine, bf16 peak 900-1,030 GFLOP/s in these runs):
- the whole written-out step (``backprop.Step.__call__``, forward, loss and backward; no autograd, so
  nothing for AOT autograd to trace) under torch.compile, no graph break: 10.6 s to compile cold, 2.6 s
  from inductor's on-disk cache; 3.95 / 3.36 / 3.33 ms a step against 3.41 / 3.39 / 3.28 ms eager, in
  alternation: within noise. Profiled: its matmuls take what eager's do (1.9 ms a step), its fused
  elementwise kernels 0.57 ms, Adam 0.38 ms. Not kept;
- section 2's last column: the step's matmuls followed by Adam's step, nothing else, reach 57-69% of
  the bf16 peak over three runs of sections 1-2 (matmuls alone 64-84%). The 60% target would leave
  nothing, or less than nothing, for the loss, the ReLU masks, the bias sums, the sampling and the two
  flat casts; with them fused by inductor (above) they still cost 0.57 ms, a sixth of the step. Out of
  reach on this CPU at batch 256, and larger batches cost quality (second round).
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
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "Models"))

from latentlab import animations  # noqa: E402
from latentlab.checkpoints import load_model  # noqa: E402
from latentlab.cli import DEVICE_HELP, pick_device, pick_precision, positive, seed_everything  # noqa: E402
from latentlab.data import DEFAULT_DATA_ROOT, load_mnist  # noqa: E402
from latentlab.models import build_model  # noqa: E402
from latentlab.registry import specs  # noqa: E402
from latentlab.training import (encode_all, evaluate, init_output_bias, keep_freed_memory,  # noqa: E402
                                 make_optimizer, train_epoch)

SPECS = specs()
# Test MSE of the original scripts after their 100 epochs at batch 32, measured on this kind of
# machine with this repo's metric definitions (issue "The four model scripts", item 10).
ORIGINAL_MSE = {"ae2": 0.0403, "vae2": 0.0410, "ae32": 0.0077, "vae32": 0.0240}


def cpu_name():
    """The CPU's model name and whether it has AMX or AVX512-BF16: the bf16 peak depends on them."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    return f"{name}, {'AMX' if 'amx_bf16' in flags else 'AVX512-BF16' if 'avx512_bf16' in flags else 'no native bf16'}"


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device, dtype, n=2048, reps=10, trials=5):
    """Best of several timed runs: on a shared host the worst runs measure neighbours, not the chip."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = 0.0
    for size in (1024, n):
        x, y = a[:size, :size].contiguous(), b[:size, :size].contiguous()
        for _ in range(3):
            x @ y
        for _ in range(trials):
            sync(device)
            t = time.perf_counter()
            for _ in range(reps):
                x @ y
            sync(device)
            best = max(best, 2 * size ** 3 * reps / (time.perf_counter() - t) / 1e9)
    return best


def matmul_ceilings(model, device, dtype, batch, optimizer, reps=50):
    """GFLOP/s of a training step's matmuls alone at ``model``'s shapes (each layer's forward, input
    gradient, not the first layer's, and weight gradient, in ``dtype``; nothing else), and of the same
    with ``optimizer.step()`` after each step (Adam's pass over the weights and moments), the one other
    piece of work a step cannot shed."""
    dtype = dtype or torch.float32
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    ops = []
    for i, m in enumerate(layers):
        h = torch.randn(batch, m.in_features, device=device, dtype=dtype)
        g = torch.randn(batch, m.out_features, device=device, dtype=dtype)
        w = m.weight.detach().to(dtype)
        ops += [lambda h=h, w=w: torch.mm(h, w.t()), lambda g=g, h=h: torch.mm(g.t(), h)]
        if i != 0:
            ops.append(lambda g=g, w=w: torch.mm(g, w))
    rates = []
    for step in (ops, ops + [optimizer.step]):
        for op in step:
            op()
        sync(device)
        t = time.perf_counter()
        for _ in range(reps):
            for op in step:
                op()
        sync(device)
        rates.append(reps * batch * train_flops_per_image(model) / (time.perf_counter() - t) / 1e9)
    return rates


def train_flops_per_image(model):
    """Forward 2*in*out per linear layer; backward twice that, minus the input gradient of the first."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    fwd = sum(2 * m.in_features * m.out_features for m in layers)
    first = [model.encoder[0]]
    return 3 * fwd - sum(2 * m.in_features * m.out_features for m in first)


def training_speed(spec, data, device, amp, images=30_000):
    seed_everything(0)
    model = build_model(spec.kind, spec.latent_dim, spec.hidden).to(device)
    opt = make_optimizer(model, spec.lr, spec.epochs, data.x_train.shape[0] // spec.batch_size)
    x = data.x_train[:images]
    train_epoch(model, opt, x[:spec.batch_size * 4], spec.batch_size, amp=amp)  # warm-up
    sync(device)
    t = time.perf_counter()
    train_epoch(model, opt, x, spec.batch_size, amp=amp)
    sync(device)
    rate = images / (time.perf_counter() - t)
    return (rate, rate * train_flops_per_image(model) / 1e9, *matmul_ceilings(model, device, amp, spec.batch_size, opt))


def seconds_to_target(spec, data, device, amp, target):
    """Train with the script's defaults until the test MSE reaches ``target``; wall seconds."""
    seed_everything(0)
    model = build_model(spec.kind, spec.latent_dim, spec.hidden).to(device)
    init_output_bias(model, data.x_train)
    opt = make_optimizer(model, spec.lr, spec.epochs, -(-data.x_train.shape[0] // spec.batch_size))
    training = 0.0  # like the original's figure, only training time counts, not the test passes
    for epoch in range(1, spec.epochs + 1):
        sync(device)
        began = time.perf_counter()
        train_epoch(model, opt, data.x_train, spec.batch_size, amp=amp)
        sync(device)
        training += time.perf_counter() - began
        mse = evaluate(model, data.x_test)["mse"]
        if mse <= target:
            return training, epoch, mse
    return float("nan"), spec.epochs, mse


class OriginalAE(nn.Module):
    """The original scripts' models: 784-128-z MLPs, ReLU on the AE's code, sigmoid output."""

    def __init__(self, z, vae):
        super().__init__()
        self.vae = vae
        self.enc = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 2 * z if vae else z),
                                 *(() if vae else (nn.ReLU(),)))
        self.dec = nn.Sequential(nn.Linear(z, 128), nn.ReLU(), nn.Linear(128, 784), nn.Sigmoid())

    def loss(self, x):
        h = self.enc(x)
        if not self.vae:
            return nn.functional.mse_loss(self.dec(h), x)
        mu, logvar = h.chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        rec = nn.functional.binary_cross_entropy(self.dec(z), x, reduction="sum")
        return (rec - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())) / x.shape[0]


def original_epoch_seconds(spec):
    from torchvision import datasets, transforms
    ds = datasets.MNIST(DEFAULT_DATA_ROOT, train=True, transform=transforms.ToTensor())
    loader = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True)
    model = OriginalAE(spec.latent_dim, spec.kind == "vae")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    t = time.perf_counter()
    for x, _ in loader:
        loss = model.loss(x.view(-1, 784))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t


def gif_seconds(device, data):
    labels = data.y_test.cpu().numpy()
    out, times = Path("/tmp") if Path("/tmp").is_dir() else REPO, {}
    jobs = {
        "AE 2-D sampling_1.gif": ("ae2", lambda m, c: animations.ae_loop(m, c, labels, out / "b1.gif")),
        "AE 2-D sampling_2.gif": ("ae2", lambda m, c: animations.ae_cluster_tour(m, c, labels, out / "b2.gif")),
        "VAE 2-D vae_latent_walk.gif": ("vae2", lambda m, c: animations.vae_prior_walk(m, c, labels, out / "b3.gif")),
        "VAE 2-D posterior_evolution.gif": ("vae2", lambda m, c: animations.posterior_evolution(
            [c[:3000] * (e / 35) for e in range(36)], labels[:3000], out / "b4.gif")),
        "AE 32-D latent_walk.gif": ("ae32", lambda m, c: animations.pair_walk(m, data.x_test, labels, out / "b5.gif")),
        "VAE 32-D latent_walk.gif": ("vae32", lambda m, c: animations.pair_walk(m, data.x_test, labels, out / "b6.gif")),
    }
    for name, (key, job) in jobs.items():
        spec = SPECS[key]
        ckpt = REPO / spec.results_dir / "model.pt"
        model = (load_model(ckpt, spec, device)[0] if ckpt.exists()
                 else build_model(spec.kind, spec.latent_dim, spec.hidden).to(device).eval())
        codes = encode_all(model, data.x_test).cpu().numpy()
        t = time.perf_counter()
        job(model, codes)
        times[name] = time.perf_counter() - t
    for i in range(1, 7):
        (out / f"b{i}.gif").unlink(missing_ok=True)
    return times


def plots_only_seconds(spec, device):
    """(wall s, metrics s, figures s) of ``--plots-only`` on a copy of the committed results."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results"
        shutil.copytree(REPO / spec.results_dir, out)
        cmd = [sys.executable, str(REPO / "Models" / spec.script), "--plots-only", "--quiet",
               "--out", str(out), "--device", str(device)]
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t
        record = json.loads((out / "metrics.json").read_text())
    return wall, record["eval_seconds"], sum(record["figure_seconds"].values())


def conversion_share(spec, data, device, amp, steps=100):
    """(share of CPU time in dtype conversions, share in matmuls) over ``steps`` training steps."""
    from torch.profiler import ProfilerActivity, profile
    seed_everything(0)
    model = build_model(spec.kind, spec.latent_dim, spec.hidden).to(device)
    opt = make_optimizer(model, spec.lr, spec.epochs, data.x_train.shape[0] // spec.batch_size)
    x = data.x_train[:steps * spec.batch_size]
    train_epoch(model, opt, x[:spec.batch_size * 4], spec.batch_size, amp=amp)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_epoch(model, opt, x, spec.batch_size, amp=amp)
    self_us = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
    total = sum(self_us.values())
    convert = sum(self_us.get(k, 0) for k in ("aten::copy_", "aten::_to_copy"))
    matmul = sum(self_us.get(k, 0) for k in ("aten::mm", "aten::addmm"))
    return convert / total, matmul / total


def default_run_seconds(spec, device):
    """(wall s, train s, evaluation s, figures s) of the script with its defaults, into a scratch folder."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results"
        cmd = [sys.executable, str(REPO / "Models" / spec.script), "--quiet", "--out", str(out), "--device", str(device)]
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONHASHSEED": "0"})
        wall = time.perf_counter() - t
        record = json.loads((out / "metrics.json").read_text())
    return wall, record["train_seconds"], record["eval_seconds"], sum(record["figure_seconds"].values())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--skip-original", action="store_true", help="skip the slow original loop (default: off)")
    p.add_argument("--repeats", type=positive(int), default=1,
                   help="runs of each script in section 7, whose median is printed (default: 1)")
    p.add_argument("--sections", default="1,2,3,4,5,6,7,8",
                   help="comma-separated sections to run; 3 and 4 run together (default: 1,2,3,4,5,6,7,8)")
    args = p.parse_args()
    sections = set(args.sections.replace(" ", "").split(","))
    device = pick_device(args.device)
    amp = pick_precision("auto", device)
    keep_freed_memory()
    print(f"device {device} ({cpu_name() if device.type == 'cpu' else torch.cuda.get_device_name(device)}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"training precision {'bf16' if amp else 'fp32'}")
    if sections & {"1", "2"}:
        peak32 = matmul_peak(device, torch.float32)
        peak16 = matmul_peak(device, torch.bfloat16) if amp else None
        print(f"\n1. matmul peak: float32 {peak32:.0f} GFLOP/s" + (f", bfloat16 {peak16:.0f} GFLOP/s" if amp else ""))
    data = load_mnist(device=device)

    if "2" in sections:
        print("\n2. training throughput with the default batch size and precision")
        peak = peak16 if amp else peak32
        print(f"{'model':8} {'batch':>5} {'images/s':>9} {'GFLOP/s':>8} {'% of bf16 peak':>15} {'% of fp32 peak':>15}"
              f" {'matmuls alone: % of peak':>25} {'+ Adam: % of peak':>18}")
        for spec in SPECS.values():
            rate, gflops, ceiling, with_adam = training_speed(spec, data, device, amp)
            bf16 = f"{100 * gflops / peak16:14.0f}%" if amp else f"{'—':>15}"
            print(f"{spec.label:8} {spec.batch_size:5d} {rate:9.0f} {gflops:8.0f} {bf16} {100 * gflops / peak32:14.0f}%"
                  f" {100 * ceiling / peak:24.0f}% {100 * with_adam / peak:17.0f}%")

    if sections & {"3", "4"}:
        print("\n3-4. the original loop (DataLoader + ToTensor, batch 32, 784-128-z) against ours")
        print(f"{'model':8} {'orig s/epoch':>12} {'orig 100 ep':>11} {'target MSE':>10} "
              f"{'ours: s':>8} {'epochs':>6} {'speed-up':>9}")
        for key, spec in SPECS.items():
            orig = float("nan") if args.skip_original else original_epoch_seconds(spec)
            secs, epochs, mse = seconds_to_target(spec, data, device, amp, ORIGINAL_MSE[key])
            print(f"{spec.label:8} {orig:12.1f} {100 * orig:11.0f} {ORIGINAL_MSE[key]:10.4f} {secs:8.1f} {epochs:6d} "
                  f"{100 * orig / secs:8.0f}x")

    if "5" in sections:
        print("\n5. GIF rendering (from the committed checkpoints when present)")
        for name, secs in gif_seconds(device, data).items():
            print(f"{name:32} {secs:5.2f} s")

    if "6" in sections:
        print("\n6. --plots-only on a copy of the committed results (target: 20 s per script)")
        print(f"{'model':8} {'wall s':>7} {'metrics s':>10} {'figures s':>10}")
        for spec in SPECS.values():
            if (REPO / spec.results_dir / "model.pt").exists():
                wall, metrics_s, figures_s = plots_only_seconds(spec, device)
                print(f"{spec.label:8} {wall:7.1f} {metrics_s:10.1f} {figures_s:10.1f}")
            else:
                print(f"{spec.label:8} no committed model.pt")

    if "7" in sections:
        print(f"\n7. each script with its defaults, end to end (target: 45 s on a 2-core CPU); "
              f"median of {args.repeats} run(s), the scripts taking turns")
        print(f"{'model':8} {'wall s':>7} {'train s':>8} {'eval s':>7} {'figures s':>10} {'wall: min-max':>14}")
        runs = {key: [] for key in SPECS}
        for _ in range(args.repeats):  # in turns, so a slow spell of this shared host hits every script
            for key, spec in SPECS.items():
                runs[key].append(default_run_seconds(spec, device))
        for key, spec in SPECS.items():
            wall, train_s, eval_s, figures_s = statistics.median_low(runs[key])  # one whole run: the median wall
            walls = [r[0] for r in runs[key]]
            print(f"{spec.label:8} {wall:7.1f} {train_s:8.1f} {eval_s:7.1f} {figures_s:10.1f} "
                  f"{min(walls):6.1f}-{max(walls):.1f}")

    if "8" in sections:
        spec = SPECS["vae32"]
        convert, matmul = conversion_share(spec, data, device, amp)
        print(f"\n8. profile of 100 {spec.label} training steps (batch {spec.batch_size}): dtype conversions "
              f"{100 * convert:.1f}% of CPU time (target: at most 15%), matmuls {100 * matmul:.1f}%")


if __name__ == "__main__":
    main()
