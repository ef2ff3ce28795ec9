"""The exact likelihood and the true posterior of a VAE with a 2-D latent space, by quadrature.

With z in the plane, -log p(x) = -log ∫ p(x|z) p(z) dz needs no bound: it is a sum over a grid of z,
and the true posterior p(z|x) = p(x|z) p(z) / p(x) is the same sum's terms. One decoded grid serves
every image, since log p(x|z) for all images and grid points is one matrix product, x·Lᵀ − Σ A(L)
(L: the grid's logits, A: the likelihood's log-normaliser, ``likelihoods``), and log p(z) is the
model's ``log_prior``. The gap between -ELBO and this exact value is the mean KL(q(z|x) ‖ p(z|x)),
the inference gap of Cremer, Li & Duvenaud (2018, "Inference Suboptimality in Variational
Autoencoders"); the IWAE bound (Burda et al., 2015) closes part of it.

The grid is coarse-to-fine: a coarse grid (cells of ``step * cell``) over [-R, R]^2 finds, for each
image, the cells within ``margin`` nats of its best one; those cells and their neighbours are then
summed on the fine grid (midpoint rule, step ``step``). The posteriors here are ~0.02-0.1 wide, and a
midpoint sum of such a smooth peak converges faster than any power of the step (halving 0.02 moves
the mean by 0.0004 nats); ``error_bound`` measures a bound on it in every run. A conditional model's
grid is decoded under one ``label`` (every function takes it): its -log p(x|y) is summed digit by digit
(``metrics.exact_metrics``).
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

STEP = 0.02        # fine grid step
CELL = 5           # fine points per coarse cell side: coarse step 0.1
HALF_RANGE = 6.0   # the grid covers [-6, 6]^2: the prior's mass outside is < 4e-9 ...
RANGES = (6.0, 12.0, 18.0, 24.0, 32.0)  # ... unless the likelihood pulls posteriors beyond it (widened_grid)
RING_SHARE = 1e-3  # mean share of the posterior mass on the grid's outermost ring that widens the grid
MARGIN = 15.0      # nats below an image's best coarse cell that still get refined (a peak 0.02 wide
                   # can hide up to ~6 nats between coarse centres; cells 9 nats below hold < 1e-4)
CHUNK = 2048       # points decoded at once: their logits stay in the CPU's cache
ENTRIES = 2 ** 24  # image-point pairs of the coarse grid scored at once (64 MiB of float32)


def decoded(model, z, label=None):
    """(logits of the points z, and the part of log p(x|z) + log p(z) that does not depend on x)."""
    parts = [_decoded(model, z[i:i + CHUNK], label) for i in range(0, len(z), CHUNK)]
    return torch.cat([logits for logits, _ in parts]), torch.cat([rest for _, rest in parts])


def _decoded(model, z, label=None):
    y = None if label is None else torch.full((len(z),), int(label), device=z.device)
    logits = model.decode(z, y)
    return logits, model.log_prior(z) - model.likelihood.log_normalizer(logits)


def log_joint(model, x, z, grid=None, label=None):
    """log p(x|z) + log p(z) for every image (rows of x) and point (rows of z): (len(x), len(z)).
    ``grid``: ``decoded(model, z, label)`` when already at hand."""
    if grid is None:
        return torch.cat([log_joint(model, x, None, _decoded(model, z[i:i + CHUNK], label))
                          for i in range(0, len(z), CHUNK)], 1)
    logits, rest = grid
    return torch.addmm(rest, x, logits.T)


def coarse_centres(step=STEP, cell=CELL, half_range=HALF_RANGE):
    """(n*n, 2) coarse cell centres, row-major over (z1, z2), and n."""
    n = int(round(2 * half_range / (step * cell)))
    c = -half_range + (torch.arange(n) + 0.5) * step * cell
    return torch.cartesian_prod(c, c), n


def fine_points(cells, n, step=STEP, cell=CELL, half_range=HALF_RANGE):
    """(len(cells) * cell^2, 2) fine grid points of the given coarse cells (flat indices)."""
    i, j = cells // n, cells % n
    k = torch.arange(cell)
    a = (i[:, None] * cell + k[None, :] + 0.5) * step - half_range   # (cells, cell)
    b = (j[:, None] * cell + k[None, :] + 0.5) * step - half_range
    return torch.stack(torch.broadcast_tensors(a[:, :, None], b[:, None, :]), -1).reshape(-1, 2)


def selected_cells(coarse, n, margin=MARGIN):
    """Boolean (images, n*n): cells within ``margin`` nats of each image's best one, and their neighbours."""
    near = (coarse >= coarse.max(1, keepdim=True).values - margin).view(-1, n, n)
    # Grown by one cell with shifted ORs on the booleans: cheaper than max_pool2d on a float copy.
    padded = F.pad(near.to(torch.uint8), (1, 1, 1, 1)).bool()
    grown = torch.zeros_like(near)
    for di in range(3):
        for dj in range(3):
            grown |= padded[:, di:di + n, dj:dj + n]
    return grown.view(len(coarse), -1)


def _image_chunks(x, points):
    """Slices of ``x`` whose log joints with ``points`` grid points fit in ``ENTRIES``."""
    size = max(1, min(1000, ENTRIES // points))
    return [x[i:i + size] for i in range(0, len(x), size)]


@torch.no_grad()
def coarse_pass(model, x, half_range=HALF_RANGE, margin=MARGIN, step=STEP, cell=CELL, label=None):
    """One decoded coarse grid scored against every image: (boolean (images, n, n): each image's
    ``selected_cells``, n, the mean share of the images' mass on the grid's outermost ring of cells)."""
    centres, n = coarse_centres(step, cell, half_range)
    grid = decoded(model, centres.to(x.device), label)
    ring = torch.ones(n, n, dtype=torch.bool, device=x.device)
    ring[1:-1, 1:-1] = False
    chosen, shares = [], []
    for xb in _image_chunks(x, len(centres)):
        lj = log_joint(model, xb, None, grid)
        chosen.append(selected_cells(lj, n, margin))
        shares.append(torch.exp(torch.logsumexp(lj[:, ring.flatten()], 1) - torch.logsumexp(lj, 1)))
    return torch.cat(chosen).view(len(x), n, n), n, float(torch.cat(shares).mean())


def chosen_cells(model, x, step=STEP, cell=CELL, half_range=HALF_RANGE, margin=MARGIN, label=None):
    """(boolean (images, n, n): each image's ``selected_cells`` of the coarse grid, and n)."""
    return coarse_pass(model, x, half_range, margin, step, cell, label)[:2]


def widened_grid(model, x, ranges=RANGES, share=RING_SHARE, label=None):
    """(half-range, its ``chosen_cells``, the ring's mean share there): the first half-range of ``ranges`` on
    whose coarse grid the outermost ring of cells holds less than ``share`` of the images' posterior mass, on
    average (a posterior beyond the border piles its mass onto the ring), else the widest, whose share then
    says how much mass may lie beyond it. The prior keeps a Bernoulli decoder's posteriors within
    [-6, 6]^2; a continuous Bernoulli's log-likelihoods of thousands of nats pull them out to |z| ≈ 25
    (docs/exact-likelihood.md)."""
    for half_range in ranges:
        chosen, _, ring_share = coarse_pass(model, x, half_range, label=label)
        if ring_share < share:
            break
    return half_range, chosen, ring_share


@torch.no_grad()
def exact_log_px(model, x, step=STEP, cell=CELL, half_range=HALF_RANGE, margin=MARGIN, block=4, chosen=None,
                 label=None):
    """Per-image log p(x) in nats (float64 numpy), by the coarse-to-fine quadrature above.

    The fine grid is visited in square blocks of ``block`` x ``block`` coarse cells, each decoded once,
    and only for the images that chose a cell in it; a running log-sum-exp collects each image's sum.
    ``chosen``: ``chosen_cells`` of ``x`` with these settings, when already at hand.
    """
    model.eval()
    if chosen is None:
        chosen, _ = chosen_cells(model, x, step, cell, half_range, margin, label)
    n = chosen.shape[1]
    total = torch.full((len(x),), -math.inf, dtype=torch.float64, device=x.device)
    for bi in range(0, n, block):
        for bj in range(0, n, block):
            block_mask = chosen[:, bi:bi + block, bj:bj + block]  # (images, <=block, <=block)
            users = torch.nonzero(block_mask.flatten(1).any(1)).squeeze(1)
            if len(users) == 0:
                continue
            rows, cols = torch.meshgrid(torch.arange(bi, bi + block_mask.shape[1]),
                                        torch.arange(bj, bj + block_mask.shape[2]), indexing="ij")
            mask = block_mask[users].flatten(1)
            used = torch.nonzero(mask.any(0)).squeeze(1)  # only the block's cells that some image chose
            cells = (rows * n + cols).flatten()[used]
            z = fine_points(cells, n, step, cell, half_range).to(x.device)
            lj = log_joint(model, x[users], z, label=label).view(len(users), len(cells), cell * cell)
            lj = lj.masked_fill(~mask[:, used, None], -math.inf)
            total[users] = torch.logaddexp(total[users], torch.logsumexp(lj.flatten(1).double(), 1))
    return (total + 2 * math.log(step)).cpu().numpy()


def error_bound(model, x, step=STEP, half_range=HALF_RANGE, base=None, grow=2.0, coarser=3, label=None):
    """(|Δ mean| when the fine grid is made coarser, |Δ mean| when the range grows by ``grow``) in
    nats: the quadrature's error, measured. The coarser grid keeps the coarse cells and puts
    ``coarser`` points a side in each instead of ``CELL`` (step 0.02 -> 0.0333).
    ``base``: ``exact_log_px`` of ``x`` with these settings, when already at hand.

    Why coarser and not finer: the difference to a coarser grid bounds this grid's error whenever the
    error falls at least as fast as step^1.4 ((5/3)^1.4 = 2), and costs far less than a halved step's
    (9 points a cell instead of 100). On the committed 2-D VAE the error falls far faster than that,
    so the bound is loose, and still well below the spread over seeds.

    On the wider grid, an image none of whose chosen cells lies in the added border sums the very
    cells it summed before: only the others are summed again (a posterior can reach the border: a
    test 7 of the 2-D VAE has its mode at z1 = 5.6 and 0.06 nats beyond z1 = 6).
    """
    base = exact_log_px(model, x, step, CELL, half_range, label=label) if base is None else np.asarray(base)
    rougher = exact_log_px(model, x, step * CELL / coarser, coarser, half_range, label=label)
    chosen, n = chosen_cells(model, x, step, CELL, half_range + grow, label=label)
    border = int(round(grow / (step * CELL)))   # coarse cells added on each side
    inside = torch.zeros(n, n, dtype=torch.bool, device=chosen.device)
    inside[border:n - border, border:n - border] = True
    reaching = torch.nonzero((chosen & ~inside).flatten(1).any(1)).squeeze(1)
    wider = base.copy()
    if len(reaching):
        wider[reaching.cpu().numpy()] = exact_log_px(model, x[reaching], step, CELL, half_range + grow,
                                                     chosen=chosen[reaching], label=label)
    return float(abs(rougher.mean() - base.mean())), float(abs(wider.mean() - base.mean()))


@torch.no_grad()
def posterior_grid(model, x, centre, width, points=161, label=None):
    """The true posterior p(z|x) of one image on a ``points`` x ``points`` grid of side ``width``
    around ``centre``: (density (points, points) indexed [z2, z1], z1 axis, z2 axis, log p(x) there)."""
    a = centre[0] + torch.linspace(-width / 2, width / 2, points)
    b = centre[1] + torch.linspace(-width / 2, width / 2, points)
    z = torch.cartesian_prod(b, a).flip(1)  # rows: z2 outer, z1 inner
    lj = log_joint(model, x[None], z.to(x.device), label=label)[0].double().cpu()
    h = width / (points - 1)
    log_px = torch.logsumexp(lj, 0) + 2 * math.log(h)
    return torch.exp(lj - log_px).view(points, points).numpy(), a.numpy(), b.numpy(), float(log_px)


@torch.no_grad()
def mode(model, x, grid=None, half_range=HALF_RANGE, label=None):
    """The true posterior's mode of one image: the best point of the fine grid of its chosen cells,
    refined on a 21 x 21 grid a tenth of the step apart around it. ``grid``: ``decoded`` of the coarse
    centres, to share between images."""
    centres, n = coarse_centres(half_range=half_range)
    coarse = log_joint(model, x[None], centres.to(x.device), grid, label)
    cells = torch.nonzero(selected_cells(coarse, n)[0]).squeeze(1)
    pts = fine_points(cells, n, half_range=half_range)
    top = pts[int(log_joint(model, x[None], pts.to(x.device), label=label)[0].argmax())]
    offsets = (torch.arange(21) - 10) * STEP / 10
    local = top + torch.cartesian_prod(offsets, offsets)
    return local[int(log_joint(model, x[None], local.to(x.device), label=label)[0].argmax())].numpy()
