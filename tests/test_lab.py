"""The page's "train it yourself" lab (page/lab_math.js, lab_worker.js, lab.js) in Chromium: its
mathematics against torch on the same weights, batch and noise (the loss, every gradient, ten Adam
steps of torch.optim.Adam), through the repo's own model and loss (``models.build_model``,
``VAE.sample``, ``losses.vae_loss``); that 60 s of training both models at once in the page gives codes
that a 5-NN classifier reads and a VAE that keeps to its prior; and that the section works by touch at
390 px. The committed training digits are checked against the bundled MNIST without a browser.
"""
import base64
import json
import zlib
from unittest import mock

import numpy as np
import pytest
import torch

from conftest import REPO, Page
from latentlab import models
from latentlab.data import load_mnist
from latentlab.losses import ae_loss, vae_loss
from latentlab.metrics import knn_accuracy
from latentlab.models import build_model
from latentlab.page_export import LAB, lab_index

# Adam steps of 64 digits each model takes before the tests read it: a fixed amount of training, so the
# outcome is the same on a fast or a loaded machine (about 30 s of both training at once on 2 cores).
TRAIN_STEPS = 1500


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def test_the_committed_lab_digits_are_mnist_training_digits_at_16_levels(mnist):
    text = (REPO / "page" / "lab_data.js").read_text(encoding="utf-8")
    data = json.loads(text[text.index("=") + 1:].strip().rstrip(";"))
    idx = lab_index(len(mnist.x_train))
    assert data["index"] == idx.tolist() and len(idx) == LAB
    levels = np.frombuffer(zlib.decompress(base64.b64decode(data["levels"])), np.uint8).reshape(LAB, 784)
    assert np.array_equal(levels, (mnist.x_train[idx].numpy() * 15).round().astype(np.uint8))
    assert np.array_equal(np.frombuffer(base64.b64decode(data["labels"]), np.uint8), mnist.y_train[idx].numpy())


# --------------------------------------------------------------------------- against torch

@pytest.fixture(scope="module")
def page(browser):
    p = Page(browser, REPO)
    yield p
    assert p.errors == []
    p.close()


def torch_model(kind, sizes, seed):
    """The lab's network as the repo builds it: build_model's MLP pair with the lab's widths, and ReLUs
    between the layers, as page/lab_math.js differentiates them (whatever models.ACTIVATION says)."""
    torch.manual_seed(seed)
    with mock.patch.object(models, "ACTIVATION", torch.nn.ReLU):
        return build_model(kind, sizes[-1], "mlp", hidden=tuple(sizes[1:-1]))


def torch_loss(model, x, eps, beta):
    if not model.variational:
        logits, _ = model(x)
        return ae_loss(logits, x)
    mu, logvar = model.posterior(x)
    return vae_loss(model.decode(model.sample(mu, logvar, eps)), x, mu, logvar, beta)


def as_js(model):
    return {name: t.detach().flatten().tolist() for name, t in model.state_dict().items()}


def batch(mnist, n, seed):
    idx = torch.from_numpy(np.random.default_rng(seed).choice(len(mnist.x_train), n, replace=False))
    return mnist.x_train[idx]


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_the_labs_loss_and_gradients_match_torch(page, mnist, kind):
    sizes = page.js("window.latentlab.lab.sizes")
    assert sizes[0] == 784 and sizes[-1] == 2
    model = torch_model(kind, sizes, seed=3)
    for name, p in model.named_parameters():  # a trained-like start: decoder bias off zero, larger weights
        p.data.mul_(1.5)
    x, beta = batch(mnist, 64, seed=1), 0.7
    eps = torch.randn(64, 2, generator=torch.Generator().manual_seed(2)) if kind == "vae" else None
    loss, rec, kl = torch_loss(model, x, eps, beta)
    loss.backward()
    got = page.js("([kind, p, x, eps, beta]) => window.latentlab.lab.step(kind, p, x, eps, beta)",
                  [kind, as_js(model), x.tolist(), eps.tolist() if eps is not None else None, beta])
    for name, value in (("loss", loss), ("rec", rec), ("kl", kl)):
        assert abs(got[name] - value.item()) <= 1e-5 * max(abs(value.item()), 1e-3), (name, got[name], value.item())
    assert set(got["grads"]) == {n for n, _ in model.named_parameters()}
    for name, p in model.named_parameters():
        g, ref = np.array(got["grads"][name]), p.grad.flatten().numpy()
        rel = np.abs(g - ref).max() / np.abs(ref).max()
        assert rel <= 1e-4, (name, rel)


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_ten_adam_steps_in_the_lab_match_torch_optim_adam(page, mnist, kind):
    sizes, lr, beta = page.js("window.latentlab.lab.sizes"), 3e-3, 1.0
    model = torch_model(kind, sizes, seed=4)
    start = as_js(model)
    xs = [batch(mnist, 64, seed=10 + t) for t in range(10)]
    gen = torch.Generator().manual_seed(5)
    epss = [torch.randn(64, 2, generator=gen) for _ in xs] if kind == "vae" else None
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for t, x in enumerate(xs):
        opt.zero_grad()
        torch_loss(model, x, epss[t] if epss else None, beta)[0].backward()
        opt.step()
    got = page.js("([kind, p, xs, epss, beta, lr]) => window.latentlab.lab.adam(kind, p, xs, epss, beta, lr)",
                  [kind, start, [x.tolist() for x in xs], [e.tolist() for e in epss] if epss else None, beta, lr])
    moved = 0.0
    for name, p in model.named_parameters():
        after = p.detach().flatten().numpy()
        assert np.abs(np.array(got[name]) - after).max() <= 1e-4, name
        moved = max(moved, np.abs(after - np.array(start[name])).max())
    assert moved > 5 * lr  # the ten steps did move the weights


# --------------------------------------------------------------------------- it learns, in the page

@pytest.fixture(scope="module")
def trained(browser):
    """The committed page after TRAIN_STEPS steps of each model, both training at once with the defaults."""
    p = Page(browser, REPO)
    assert p.js("typeof window.LATENTLAB_LAB") == "undefined"  # the lab's data is not part of the first render
    lab = "window.latentlab.lab"
    p.js(f"{lab}.reset(0)")
    p.js(f"{lab}.start({TRAIN_STEPS})")
    done = f"['ae', 'vae'].every((k) => {lab}.stats()[k].images === {TRAIN_STEPS * 64}) && !{lab}.running()"
    p.tab.wait_for_function(done, timeout=600_000)
    out = {"page": p, "stats": p.js(f"{lab}.stats()")}
    for kind in ("ae", "vae"):
        out[kind] = {"test": p.js(f"{lab}.codes('{kind}')"), "train": p.js(f"{lab}.trainCodes('{kind}')")}
    yield out
    assert p.errors == []
    p.close()


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_training_in_the_page_gives_codes_that_knn_reads(trained, kind):
    stats = trained["stats"][kind]
    assert stats["images"] > 0 and stats["rec"] < 200, stats  # the mean image alone scores ~205 nats
    codes = trained[kind]
    assert len(codes["test"]["labels"]) == 2000 and len(codes["train"]["labels"]) == 10_000
    train, test = codes["train"], codes["test"]
    accuracy = knn_accuracy(np.reshape(train["codes"], (-1, 2)), train["labels"],
                            np.reshape(test["codes"], (-1, 2)), test["labels"])
    assert accuracy >= 0.55, (kind, accuracy, stats)


def test_the_vae_trained_in_the_page_keeps_its_codes_near_the_prior(trained):
    z = np.reshape(trained["vae"]["test"]["codes"], (-1, 2))
    within = (np.linalg.norm(z, axis=1) <= 3).mean()
    assert within >= 0.9, within
    ae = np.reshape(trained["ae"]["test"]["codes"], (-1, 2))
    assert np.linalg.norm(ae, axis=1).max() > 3  # no prior holds the AE's codes


def test_the_lab_draws_its_planes_and_decoded_points(trained):
    p = trained["page"]
    for kind in ("ae", "vae"):
        pixels = p.js(f"""() => {{
          const c = document.querySelector('.lab-panel[data-kind="{kind}"] .lab-plane');
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let coloured = 0;
          for (let i = 0; i < d.length; i += 4) if (Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 60) coloured++;
          return coloured;
        }}""")
        assert pixels > 5000, (kind, pixels)  # 2,000 coloured dots
        grid = p.js(f"""() => Array.from(document.querySelectorAll('.lab-panel[data-kind="{kind}"] .lab-grid canvas'),
          (c) => Array.from(c.getContext('2d').getImageData(0, 0, 28, 28).data.filter((_, i) => i % 4 === 0)))""")
        assert len(grid) == 9
        assert np.std(np.array(grid, float)) > 30  # ink and paper, not a blank or a flat grey


def test_reset_with_a_seed_starts_the_same_network_and_beta_applies(browser):
    p = Page(browser, REPO)
    lab = "window.latentlab.lab"
    codes = []
    for seed in (7, 7, 8):
        p.js(f"{lab}.reset({seed})")
        p.tab.wait_for_timeout(200)
        codes.append(np.array(p.js(f"{lab}.codes('vae')")["codes"]))
    assert np.array_equal(codes[0], codes[1]) and not np.array_equal(codes[0], codes[2])
    assert p.js(f"{lab}.stats()")["vae"]["images"] == 0
    p.js(f"{lab}.setBeta(0)")
    p.js(f"{lab}.start()")
    p.tab.wait_for_function(f"{lab}.stats().vae.images > 0 && {lab}.stats().vae.beta === 0", timeout=20_000)
    p.js(f"{lab}.pause()")
    assert p.js("document.querySelector('.lab-beta output').textContent") == "0"
    assert p.errors == []
    p.close()


def test_the_lab_trains_by_touch_on_a_phone_screen(browser):
    p = Page(browser, REPO, width=390, touch=True)
    p.tab.locator(".lab-run").scroll_into_view_if_needed()
    p.tab.locator(".lab-run").tap()
    p.tab.wait_for_function("window.latentlab.lab.stats().ae.images > 0", timeout=20_000)
    p.js("window.latentlab.lab.pause()")
    assert p.js("document.documentElement.scrollWidth") <= 390
    box = p.box(".lab-panel[data-kind='vae'] .lab-plane")
    assert 250 <= box["width"] <= 390
    assert p.errors == []
    p.close()
