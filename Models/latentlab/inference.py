"""Per-image variational inference: for each image its own q(z|x), fitted by maximising that image's ELBO
with the decoder frozen, the textbook step of VI that an encoder amortises.

Cremer, Li & Duvenaud (2018, "Inference Suboptimality in Variational Autoencoders") split the inference gap
log p(x) − ELBO(q_encoder) into the *approximation gap* log p(x) − ELBO(q*), with q* the best member of the
family for that image, and the *amortization gap* ELBO(q*) − ELBO(q_encoder). Here q* is found the standard
way: the reparameterisation trick (Kingma & Welling, 2013), autograd and ``torch.optim.Adam``, every image of
a batch with parameters of its own (the objective is a sum over images, so one image's gradient does not
depend on the others), started from the encoder's q.

A family is a class holding each image's parameters (``parameters()``, what Adam moves) and
``transform(ε)``, which turns standard normal noise into v with −log |det ∂v/∂ε|; ``Family.rsample`` then gives
the draws z (differentiable in the parameters: the reparameterisation trick) and log q(z). Three families:
- ``DiagonalGaussian``: N(μ, diag σ²), the encoder's own family;
- ``FullGaussian``: N(μ, L Lᵀ) with L lower-triangular, which can tilt to follow a correlated posterior;
- ``PlanarFlow``: a diagonal Gaussian pushed through planar layers z ← z + u·tanh(wᵀz + b) (Rezende &
  Mohamed, 2015, "Variational Inference with Normalizing Flows"), which can bend and skew.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)
# What the scripts run (metrics.py), stated in docs/variational-inference.md
STEPS, SAMPLES = 300, 4                # the fit: Adam steps (the learning rate cosine-decayed to 0), draws per step
EVAL_SAMPLES = 500                      # the deterministic evaluation of ELBO(q*): fixed noise, draws an image
IMAGES, STUDY_IMAGES = 1000, 200        # the first test images of the split; of the families and the K curve
IWAE_K = 5000                           # log p(x) where it is not exact (latent size > 2): IWAE with q* as proposal
K_STEPS = (0, 1, 3, 10, 30, 100)        # semi-amortized refinement: ELBO after K steps from the encoder's q


class Family:
    """What the three families share: each is written in its start's own coordinates, z = c + s ⊙ v, with
    c, s the mean and standard deviations of the q it started from (fixed) and v from the family's own form,
    which starts at N(0, I). Adam's steps are then measured in the start's widths, so one learning rate fits
    every image: a 2-D posterior can be 0.02 wide, the prior 1."""

    def __init__(self, mu, logvar, generator=None):
        self.center, self.scale = mu.detach().clone(), (0.5 * logvar).detach().exp()
        shape = mu.shape
        self.mu = torch.zeros(shape, dtype=mu.dtype, device=mu.device, requires_grad=True)      # the mean of v
        self.logvar = torch.zeros(shape, dtype=mu.dtype, device=mu.device, requires_grad=True)  # (diagonal) log-variances of v

    def rsample(self, draws, generator=None):
        """(z, log q(z)): ``draws`` reparameterised draws of each image's z, (draws, images, d) and (draws, images)."""
        eps = torch.randn((draws, *self.mu.shape), generator=generator, dtype=self.mu.dtype, device=self.mu.device)
        v, log_q = self.transform(eps)
        log_q = log_q - 0.5 * (eps.pow(2) + LOG_2PI).sum(-1)          # log N(ε; 0, I) − log |det ∂v/∂ε|
        return self.center + self.scale * v, log_q - self.scale.log().sum(-1)


class DiagonalGaussian(Family):
    """q(z) = N(μ, diag σ²), one per image: the encoder's family."""
    name, lr = "diagonal", 0.2   # Adam's first learning rate: 300 steps end within 0.01 nats of 2,000

    def parameters(self):
        return [self.mu, self.logvar]

    def transform(self, eps):
        """(v, −log |det ∂v/∂ε|) for the standard normal draws ``eps``."""
        return self.mu + (0.5 * self.logvar).exp() * eps, -0.5 * self.logvar.sum(-1)

    def mean_cov(self):
        """Each image's mean and covariance of z, (images, d) and (images, d, d)."""
        return self.center + self.scale * self.mu, torch.diag_embed((self.scale ** 2 * self.logvar.exp()))


class FullGaussian(Family):
    """q(z) = N(μ, Σ) with any correlation: v = m + L ε, L lower-triangular with a positive diagonal
    exp(logvar / 2). Starts as the given diagonal Gaussian (L = I)."""
    name, lr = "full", 0.2

    def __init__(self, mu, logvar, generator=None):
        super().__init__(mu, logvar)
        self.lower = torch.zeros((*mu.shape, mu.shape[-1]), dtype=mu.dtype, device=mu.device, requires_grad=True)

    def parameters(self):
        return [self.mu, self.logvar, self.lower]

    def scale_tril(self):
        return torch.tril(self.lower, -1) + torch.diag_embed((0.5 * self.logvar).exp())

    def transform(self, eps):
        # det L is the product of its diagonal
        return self.mu + (self.scale_tril() @ eps.unsqueeze(-1)).squeeze(-1), -0.5 * self.logvar.sum(-1)

    def mean_cov(self):
        root = self.scale.unsqueeze(-1) * self.scale_tril()   # diag(s) L
        return self.center + self.scale * self.mu, root @ root.transpose(-1, -2)


class PlanarFlow(DiagonalGaussian):
    """A diagonal Gaussian pushed through ``layers`` planar layers f(v) = v + û·tanh(wᵀv + b) (Rezende &
    Mohamed, 2015): log q(f(v)) = log q(v) − log |1 + ûᵀw·tanh'(wᵀv + b)|. û keeps ûᵀw ≥ −1, so each layer
    is invertible (their appendix A). Starts as the given Gaussian (u = 0), w random."""
    name, lr = "flow", 0.05   # its u, w, b take smaller steps than a Gaussian's mean

    def __init__(self, mu, logvar, generator=None, layers=8):
        super().__init__(mu, logvar)
        shape = (layers, *mu.shape)
        self.w = torch.randn(shape, generator=generator, device=mu.device).to(mu.dtype).requires_grad_()
        self.u = torch.zeros(shape, dtype=mu.dtype, device=mu.device, requires_grad=True)
        self.b = torch.zeros(shape[:-1], dtype=mu.dtype, device=mu.device, requires_grad=True)

    def parameters(self):
        return [self.mu, self.logvar, self.u, self.w, self.b]

    def transform(self, eps):
        v, log_det = super().transform(eps)
        for u, w, b in zip(self.u, self.w, self.b):
            wu = (w * u).sum(-1, keepdim=True)
            u_hat = u + (F.softplus(wu) - 1 - wu) * w / w.pow(2).sum(-1, keepdim=True)
            h = torch.tanh((v * w).sum(-1, keepdim=True) + b.unsqueeze(-1))
            log_det = log_det - torch.log((1 + (1 - h.pow(2)) * (u_hat * w).sum(-1, keepdim=True)).abs()).squeeze(-1)
            v = v + u_hat * h
        return v, log_det


FAMILIES = {f.name: f for f in (DiagonalGaussian, FullGaussian, PlanarFlow)}


def log_weights(model, x, q, draws, generator=None, y=None):
    """log p(x|z) + log p(z) − log q(z) for ``draws`` draws z ~ q of each image, (draws, images): their mean
    is the ELBO of q, the log of their mean exp the IWAE bound with q as proposal."""
    z, log_q = q.rsample(draws, generator)
    logits = model.decode(z, y)
    # without gradients (the evaluations: millions of decoded images), the likelihood's fast form, the same number
    log_px_z = model.log_likelihood(x, logits) if torch.is_grad_enabled() else model.likelihood.fast_log_prob(x, logits)
    return log_px_z + model.log_prior(z) - log_q


def fit(model, x, q, steps=STEPS, samples=SAMPLES, seed=0, y=None):
    """Fit q (in place) to each row of ``x``: ``steps`` Adam steps on the sum of the images' ELBOs, each
    estimated with ``samples`` reparameterised draws, the learning rate (the family's ``lr``) decayed to 0
    on a cosine, so the noisy steps settle. The model's parameters are left untouched. Returns the
    per-step mean ELBO."""
    gen = torch.Generator(device=x.device).manual_seed(seed)
    optimizer = torch.optim.Adam(q.parameters(), lr=q.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(steps, 1))
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    trace = []
    try:
        with torch.enable_grad():   # a caller's torch.no_grad() (the evaluation's) must not switch the fit off
            for _ in range(steps):
                elbo = log_weights(model, x, q, samples, gen, y).mean(0)
                optimizer.zero_grad(set_to_none=True)
                (-elbo.sum()).backward()
                optimizer.step()
                schedule.step()
                trace.append(elbo.mean().item())
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return trace


def last_gain(trace, share=0.1):
    """How much the mean ELBO still rose at the end of a fit: the mean of its last ``share`` of steps minus
    that of the share before (nats). The convergence rule: below 0.05 nats."""
    n = max(1, int(len(trace) * share))
    return float(np.mean(trace[-n:]) - np.mean(trace[-2 * n:-n])) if len(trace) >= 2 * n else float("nan")


@torch.no_grad()
def evaluate(model, x, q, draws=EVAL_SAMPLES, seed=1, y=None, rows=20_000):
    """The deterministic evaluation: each image's log weights over ``draws`` draws of fixed noise
    (``seed``), as float64 (draws, images), about ``rows`` decoded images at a time. ``elbo_of`` and
    ``iwae_of`` read them."""
    gen = torch.Generator(device=x.device).manual_seed(seed)
    chunk = max(1, rows // len(x))
    parts = [log_weights(model, x, q, min(chunk, draws - s), gen, y).double() for s in range(0, draws, chunk)]
    return torch.cat(parts).cpu()


def elbo_of(log_w):
    """(ELBO per image, its Monte Carlo standard error per image) from ``evaluate``'s log weights."""
    return log_w.mean(0).numpy(), (log_w.std(0) / math.sqrt(len(log_w))).numpy()


def iwae_of(log_w):
    """(log p̂(x) = log mean exp of the weights per image, its standard error): the importance-sampling
    estimate (Burda et al., 2015), a lower bound in expectation; its error by the delta method,
    sd(w) / (mean(w)·√k), with the weights scaled by their largest."""
    k = len(log_w)
    w = (log_w - log_w.max(0).values).exp()
    return (torch.logsumexp(log_w, 0) - math.log(k)).numpy(), (w.std(0) / (w.mean(0) * math.sqrt(k))).numpy()


def start(family, model, x, y=None, seed=0, prior=False):
    """A q of ``family`` for each row of ``x``, started from the encoder's q (or from the prior N(0, I))."""
    mu, logvar = model.posterior(x, y)
    if prior:
        mu, logvar = torch.zeros_like(mu), torch.zeros_like(logvar)
    return FAMILIES[family](mu, logvar, generator=torch.Generator(device=x.device).manual_seed(seed))
