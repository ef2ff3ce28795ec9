"""The conditional VAE (models.CVAE): the label reaches the encoder and the decoder, and every bound is of
-log p(x|y), digit by digit: for a decoder that reads only the label, −ELBO, IWAE and the exact quadrature
all equal the closed form log p(x|y) = x·l_y − Σ A(l_y), and the wrong labels score worse."""
import math

import pytest
import torch
from torch import nn

from conftest import run_script
from latentlab.likelihoods import NAMES
from latentlab.metrics import exact_metrics, iwae_bound
from latentlab.models import CVAE, build_model
from latentlab.training import evaluate


def label_only_cvae(name, mu=0.0, logvar=0.0):
    """A CVAE whose decoder reads only the label (the logits of digit c are column c of a random matrix)
    and whose encoder gives every image the same q = N(mu, exp(logvar))."""
    torch.manual_seed(0)
    encoder, decoder = nn.Linear(784 + 10, 4), nn.Linear(2 + 10, 784)
    with torch.no_grad():
        encoder.weight.zero_()
        encoder.bias.copy_(torch.tensor([mu, mu, logvar, logvar]))
        decoder.weight.zero_()
        decoder.weight[:, 2:] = torch.randn(784, 10) * 3
        decoder.bias.zero_()
    return CVAE(encoder, decoder, 2, name).eval(), decoder.weight[:, 2:].detach().T.double()


def closed_form(model, x, logits):
    return model.likelihood.log_prob(x.double(), logits).numpy()


@pytest.mark.slow  # the quadrature sums most of the plane where the posterior is the prior
@pytest.mark.parametrize("name", NAMES)
def test_every_bound_of_a_label_only_decoder_is_log_p_x_given_y(name):
    y = torch.arange(30) % 3  # three digits: three grids (each is ~100,000 points where q is the prior)
    model, per_label = label_only_cvae(name)
    x = model.likelihood.mean(per_label[y].float())  # each digit's mean image: its own label fits it best
    want = float(-closed_form(model, x, per_label[y]).mean())
    result = evaluate(model, x, y=y)
    assert result["loss"] == pytest.approx(want, abs=1e-3) and result["kl"] == pytest.approx(0, abs=1e-6)
    iwae, elbo = iwae_bound(model, x, k=20, per_image=True, y=y)
    assert iwae.mean() == pytest.approx(want, abs=1e-3)
    m, per_image = exact_metrics(model, x, iwae, elbo, measure_error=False, y=y)
    assert m["test_nll_exact"] == pytest.approx(want, abs=1e-3)   # ten grids, each under its own label
    assert per_image["nll"] == pytest.approx(-closed_form(model, x, per_label[y]), abs=1e-3)
    wrong = (y + 3) % 10
    assert evaluate(model, x, y=wrong)["loss"] > want + 10        # the label is read, not ignored
    # q away from the prior: −ELBO = −log p(x|y) + KL in closed form; the quadrature does not see q
    model, _ = label_only_cvae(name, mu=0.5, logvar=-1.0)
    kl = 0.5 * (0.5 ** 2 + math.exp(-1.0) - 1 + 1.0) * 2
    assert evaluate(model, x, y=y)["loss"] == pytest.approx(want + kl, abs=1e-3)
    assert want <= iwae_bound(model, x, k=20, y=y) + 1e-3 < want + kl


def test_the_label_reaches_the_encoder_and_the_decoder():
    torch.manual_seed(2)
    model = build_model("cvae", 2, hidden=(32, 16)).eval()
    x, z = torch.rand(5, 784), torch.randn(5, 2)
    ones, twos = torch.ones(5, dtype=torch.long), torch.full((5,), 2)
    assert not torch.allclose(model.decode(z, ones), model.decode(z, twos))
    assert not torch.allclose(model.posterior(x, ones)[0], model.posterior(x, twos)[0])
    # k samples of each image share its label (one-hot broadcast over the leading dimension)
    log_w = model.log_weights(x, 7, torch.Generator().manual_seed(0), ones)
    assert log_w.shape == (7, 5) and torch.isfinite(log_w).all()
    # generated images: prior codes under the labels 0-9 in turn
    z = model.sample_prior(20, seed=4)
    assert torch.equal(model.generate(20, seed=4), model.image(z, torch.arange(20) % 10))


def test_the_cvae_script_refuses_a_conv_pair_in_one_line():
    r = run_script("cvae2", "--arch", "conv")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "--arch" in r.stderr
