"""Tests that fail when the science is wrong, whatever the code looks like: the reparameterised z
has the posterior's mean and variance; a VAE whose decoder ignores z has every bound (−ELBO, IWAE at
any k, the exact quadrature) equal to its closed-form −log p(x); on a trained 2-D VAE, IWAE does not
loosen as k grows and stays above the exact value, and the quadrature converges."""
import copy
import inspect
import math

import numpy as np
import pytest
import torch

from conftest import SPECS, small_trained_vae
from latentlab import exact
from latentlab.checkpoints import load_model
from latentlab.data import load_mnist
from latentlab.metrics import iwae_bound
from latentlab.models import build_model
from latentlab.training import evaluate


class Recorder(torch.nn.Module):
    """A decoder that remembers the codes it was given and returns zero logits."""

    def forward(self, z):
        self.z = z.detach().clone()
        return torch.zeros(len(z), 784)


def test_sampled_codes_have_the_posterior_mean_and_variance():
    torch.manual_seed(0)
    model = build_model("vae", 3)
    n = 200_000
    mu = torch.tensor([1.0, -2.0, 0.3]).expand(n, 3)
    logvar = torch.tensor([1.0, -1.5, 0.0]).expand(n, 3)
    model.posterior = lambda x: (mu, logvar)
    model.decoder = Recorder()
    model(torch.zeros(n, 784))
    z = model.decoder.z
    var = logvar[0].exp()
    # the sampling error of a mean is sigma / sqrt(n), of a variance sigma^2 sqrt(2 / n): 5 of each
    assert torch.all((z.mean(0) - mu[0]).abs() < 5 * var.sqrt() / math.sqrt(n)), z.mean(0)
    assert torch.all((z.var(0) - var).abs() < 5 * var * math.sqrt(2 / n)), (z.var(0), var)


@pytest.fixture(scope="module")
def digits():
    return load_mnist().x_test[:300]


def z_blind_vae(mu=0.0):
    """A 2-D VAE whose decoder ignores z (its first layer's weights are zero) and whose q(z|x) is
    N(mu, I) for every x: then p(x|z) = p(x), and with mu = 0, q(z|x) = p(z) = p(z|x)."""
    torch.manual_seed(1)
    model = build_model("vae", 2)
    with torch.no_grad():
        model.decoder[0].weight.zero_()
        model.encoder[-1].weight.zero_()
        model.encoder[-1].bias.copy_(torch.tensor([mu, mu, 0.0, 0.0]))
    return model.eval()


def closed_form_nll(model, x):
    """-log p(x) = sum over pixels of softplus(l) - x l, with the decoder's constant logits l."""
    with torch.no_grad():
        logits = model.decode(torch.zeros(1, 2))
    return (torch.nn.functional.softplus(logits) - x * logits).sum(-1).double().mean().item()


@pytest.mark.slow  # the quadrature over a posterior as wide as the prior
def test_every_bound_equals_the_closed_form_when_the_decoder_ignores_z(digits):
    model = z_blind_vae()
    truth = closed_form_nll(model, digits)
    assert abs(evaluate(model, digits)["loss"] - truth) < 1e-3
    for k in (1, 10, 100):
        assert abs(iwae_bound(model, digits, k=k) - truth) < 1e-3, k
    assert abs(-exact.exact_log_px(model, digits).mean() - truth) < 1e-3


@pytest.mark.slow  # IWAE at k = 1000 and the quadrature
def test_with_q_off_the_prior_the_elbo_pays_exactly_the_kl_and_iwae_closes_the_gap(digits):
    model = z_blind_vae(mu=1.0)  # q = N((1, 1), I), p(z|x) = N(0, I): KL = 1/2 |mu|^2 = 1 nat
    truth = closed_form_nll(model, digits)
    assert abs(evaluate(model, digits)["loss"] - (truth + 1.0)) < 1e-3
    assert abs(-exact.exact_log_px(model, digits).mean() - truth) < 1e-3
    gaps = [iwae_bound(model, digits, k=k) - truth for k in (1, 10, 1000)]
    assert abs(gaps[0] - 1.0) < 0.1 and -0.02 < gaps[2] < gaps[1] < gaps[0], gaps  # k = 1000: noise only


@pytest.fixture(scope="module")
def trained_2d():
    return small_trained_vae(2, 4000, 400, epochs=3)


@pytest.mark.slow  # IWAE at k = 1000 and the quadrature
def test_iwae_tightens_with_k_and_stays_above_the_exact_value(trained_2d):
    model, x = trained_2d
    nll = -exact.exact_log_px(model, x)
    bounds = {k: iwae_bound(model, x, k=k, per_image=True)[0] for k in (1, 10, 100, 1000)}
    ks = sorted(bounds)
    for small, big in zip(ks, ks[1:]):
        diff = bounds[big] - bounds[small]
        se = diff.std() / math.sqrt(len(diff))
        assert diff.mean() <= 3 * se, (small, big, diff.mean(), se)
    for k, b in bounds.items():
        gap = b - nll
        assert gap.mean() >= -3 * gap.std() / math.sqrt(len(gap)), (k, gap.mean())
    assert bounds[1].mean() - nll.mean() > 0.5  # the tiny model's q is far from exact: a real gap


@pytest.mark.slow  # four quadratures, one on a grid of half the step
def test_the_quadrature_converges_as_the_step_halves_and_the_range_grows(trained_2d):
    model, x = trained_2d
    coarse = exact.exact_log_px(model, x[:100], step=0.08, cell=5)
    base = exact.exact_log_px(model, x[:100])
    finer = exact.exact_log_px(model, x[:100], step=exact.STEP / 2, cell=2 * exact.CELL)
    wider = exact.exact_log_px(model, x[:100], half_range=exact.HALF_RANGE + 2)
    assert np.abs(finer - base).max() < 0.01 and np.abs(wider - base).max() < 1e-4
    assert np.abs(finer - base).mean() < np.abs(coarse - finer).mean()  # the error shrinks with the step


def reshaped(model, sharpen=1.0, shift=0.0):
    """``model`` with the decoder p(x|z) replaced by p(x|sharpen·(z1 − shift), sharpen·z2): a posterior
    ``sharpen`` times narrower, moved by ``shift`` along z1. Still a VAE, with a well-defined log p(x)."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        w = m.decoder[0].weight
        m.decoder[0].bias -= sharpen * shift * w[:, 0]
        w *= sharpen
    return m


@pytest.fixture(scope="module")
def border_case(trained_2d):
    """(the tiny 2-D VAE with its decoder moved along z1, 20 test digits): the true posterior's mode of
    digit 10 of them is moved to z1 = 5.8, so part of it lies beyond the grid's border at 6, while the
    other 19 stay below z1 = 4 (posterior means of q, about 0.2 wide: their cells within 15 nats of the
    best end well inside)."""
    model, _ = trained_2d
    candidates = load_mnist().x_test[:200]
    with torch.no_grad():
        mu = model.posterior(candidates)[0][:, 0].numpy()
    far = int(np.argmax(mu))
    shift = 5.8 - exact.mode(model, candidates[far])[0]   # the true posterior's mode, not q's mean
    inside = [int(i) for i in np.argsort(mu) if mu[i] + shift < 4.0][:19]
    assert len(inside) == 19
    return reshaped(model, shift=shift), candidates[inside[:10] + [far] + inside[10:]]


@pytest.mark.slow  # the range search, the quadrature and a dense grid
def test_the_grid_widens_to_reach_posteriors_far_from_the_origin(trained_2d):
    """A decoder that puts every posterior near z1 = 15, as a continuous Bernoulli's thousands of nats of
    log-likelihood can: widened_grid widens the grid until its outermost ring holds no posterior mass, and
    the quadrature there equals a plain dense grid around z1 = 15; the unshifted model keeps [-6, 6]^2."""
    model, x = trained_2d
    far, x = reshaped(model, shift=15.0), x[:20]
    assert exact.widened_grid(model, x)[0] == exact.HALF_RANGE
    half_range = exact.widened_grid(far, x)[0]
    assert half_range > 15
    got = exact.exact_log_px(far, x, half_range=half_range)
    plain = plain_grid_log_px(far, x, half_range=6.0, z1_reach=(-6.0, 24.0))
    assert np.abs(got - plain).max() < 0.01
    assert exact.exact_log_px(far, x).mean() < got.mean() - 50   # the default grid misses them


@pytest.mark.slow  # quadratures on three grids
def test_the_error_bound_sums_again_only_the_images_that_reach_the_wider_grids_border(border_case, monkeypatch):
    """error_bound's range check equals summing every image on the wider grid, and sums again only
    digit 10, the one whose posterior reaches beyond z1 = 6; with z1 and z2 swapped in the decoder, it
    reaches the border along z2 instead."""
    model, x = border_case
    base = exact.exact_log_px(model, x)
    every = exact.exact_log_px(model, x, half_range=exact.HALF_RANGE + 2)
    summed = []   # (images, half range) of every sum error_bound asks for
    real = exact.exact_log_px

    def spy(*args, **kwargs):
        bound = inspect.signature(real).bind(*args, **kwargs)
        bound.apply_defaults()
        summed.append((len(bound.arguments["x"]), bound.arguments["half_range"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(exact, "exact_log_px", spy)
    rougher_gap, wider_gap = exact.error_bound(model, x, base=base)
    assert wider_gap == pytest.approx(abs(every.mean() - base.mean()), abs=1e-5)
    assert wider_gap > 0.002 and every[10] - base[10] > 0.05
    assert np.abs(np.delete(every - base, 10)).max() < 1e-4
    assert summed == [(20, exact.HALF_RANGE), (1, exact.HALF_RANGE + 2)]
    rougher = real(model, x, exact.STEP * exact.CELL / 3, 3)
    assert rougher_gap == pytest.approx(abs(rougher.mean() - base.mean()), abs=1e-12)
    swapped = copy.deepcopy(model)
    swapped.decoder[0].weight.data = model.decoder[0].weight.data[:, [1, 0]].clone()   # p(x|z1, z2) -> p(x|z2, z1)
    _, swapped_gap = exact.error_bound(swapped, x, base=base)
    assert swapped_gap == pytest.approx(wider_gap, abs=1e-5)


@pytest.mark.slow  # quadratures on four grids
def test_the_rougher_grids_difference_bounds_the_error_of_a_narrow_posterior(border_case):
    """With the decoder sharpened 16 times, the posteriors are ~0.01 wide, under a grid step (0.02), and
    the midpoint sum's error is measurable: against a grid 4 times finer, the error of the default grid
    is below error_bound's rougher-grid difference, which exceeds the half-step grid's difference too."""
    model, x = border_case
    sharp = reshaped(model, sharpen=16.0)
    base = exact.exact_log_px(sharp, x)
    rougher_gap, _ = exact.error_bound(sharp, x, base=base)
    finer = exact.exact_log_px(sharp, x, exact.STEP / 2, 2 * exact.CELL)
    reference = exact.exact_log_px(sharp, x, exact.STEP / 4, 4 * exact.CELL)
    error = abs(reference.mean() - base.mean())
    assert error > 1e-4   # a real error, far above float32's rounding
    assert rougher_gap > error and rougher_gap > 3 * abs(finer.mean() - base.mean())


@pytest.mark.slow  # quadratures on three grids, some twice
def test_the_error_bound_computes_its_own_base_and_keeps_to_the_range_it_is_given(border_case):
    model, x = border_case
    rougher_gap, wider_gap = exact.error_bound(model, x, half_range=5.0)
    base = exact.exact_log_px(model, x, half_range=5.0)
    rougher = exact.exact_log_px(model, x, exact.STEP * exact.CELL / 3, 3, half_range=5.0)
    wider = exact.exact_log_px(model, x, half_range=7.0)
    assert rougher_gap == pytest.approx(abs(rougher.mean() - base.mean()), abs=1e-12)
    assert wider_gap == pytest.approx(abs(wider.mean() - base.mean()), abs=1e-5)
    assert wider_gap > 0.01   # digit 10's posterior, around z1 = 5.8, lies outside [-5, 5]


# ----------------------------------------------------------------- from the mutation run (mutation/)

def test_the_mlps_put_the_activation_between_layers_and_none_after_the_last():
    from latentlab.models import ACTIVATION, mlp
    kinds = [type(m).__name__ for m in mlp([3, 4, 5, 6])]
    act = ACTIVATION.__name__   # nn.ReLU as shipped; a reader may try nn.LeakyReLU
    assert kinds == ["Linear", act, "Linear", act, "Linear"]
    for name in ("ae", "vae"):
        model = build_model(name, 2, hidden=(64, 32))
        sizes = [m.out_features for m in model.decoder if isinstance(m, torch.nn.Linear)]
        assert sizes == [32, 64, 784] and model.latent_dim == 2


def test_the_fine_grid_tiles_each_coarse_cell():
    centres, n = exact.coarse_centres()
    cells = torch.tensor([0, 1, n, n * n - 1, 57 * n + 63])
    pts = exact.fine_points(cells, n).view(len(cells), exact.CELL ** 2, 2)
    side = exact.STEP * exact.CELL
    for c, p in zip(cells, pts):
        lo = centres[c] - side / 2
        assert torch.all(p > lo) and torch.all(p < lo + side)           # inside its own cell
        assert torch.allclose(p.mean(0), centres[c], atol=1e-5)         # centred on it
        assert len(torch.unique(torch.floor(p / exact.STEP), dim=0)) == exact.CELL ** 2  # one point a step
    assert torch.allclose(centres.min(0).values, torch.tensor(-exact.HALF_RANGE + side / 2))


def test_the_cells_refined_are_the_best_and_its_neighbours():
    n = 10
    coarse = torch.full((1, n * n), -100.0)
    coarse[0, 4 * n + 6] = 0.0
    chosen = exact.selected_cells(coarse, n, margin=5).view(n, n)
    expected = torch.zeros(n, n, dtype=torch.bool)
    expected[3:6, 5:8] = True
    assert torch.equal(chosen, expected)


def test_the_vae_code_is_the_posterior_mean():
    torch.manual_seed(5)
    model, x = build_model("vae", 3).eval(), torch.rand(8, 784)
    mu, logvar = model.posterior(x)
    assert torch.equal(model.encode(x), mu) and not torch.equal(mu, logvar)


def plain_grid_log_px(model, x, step=0.02, half_range=4.5, z1_reach=None):
    """-log p(x) the simplest way, independent of exact.py: one dense midpoint grid, no refinement
    (along z1 over ``z1_reach`` = (low, high) instead, where given)."""
    c = -half_range + (torch.arange(int(round(2 * half_range / step))) + 0.5) * step
    lo, hi = z1_reach or (-half_range, half_range)
    z = torch.cartesian_prod(lo + (torch.arange(int(round((hi - lo) / step))) + 0.5) * step, c)
    with torch.no_grad():
        logits = model.decode(z)
        rest = -torch.nn.functional.softplus(logits).sum(-1) - 0.5 * (z.pow(2).sum(-1) + 2 * math.log(2 * math.pi))
        out = [torch.logsumexp((xb @ logits.T + rest).double(), 1) for xb in x.split(100)]
    return torch.cat(out).numpy() + 2 * math.log(step)


@pytest.mark.slow  # a tiny run of the script, then the quadrature of its test digits
def test_the_recorded_exact_nll_is_what_a_plain_grid_gives(tiny_runs):
    """The 2-D VAE script's metrics.json holds exact_log_px of its model.pt on the test digits it scored,
    and that quadrature agrees with the simplest dense grid."""
    import json
    spec = SPECS["vae2"]
    folder = tiny_runs["vae2"]
    model, _ = load_model(folder / "model.pt", spec)
    recorded = json.loads((folder / "metrics.json").read_text())
    x = load_mnist().x_test[:recorded["test_subset"]]
    nll = -exact.exact_log_px(model, x)
    assert abs(nll.mean() - recorded["test_nll_exact"]) < 1e-6
    plain = -plain_grid_log_px(model, x[:300])
    assert abs(plain.mean() - nll[:300].mean()) < 0.01
