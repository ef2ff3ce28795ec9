"""One small real-data run per script (conftest.tiny_runs), then checks of what it wrote."""
import hashlib
import json
import math

import imageio.v3 as iio
import numpy as np
import pytest

from conftest import SCORED, SCRIPTS, SPECS, TINY, read_metrics, run_script, without_timings
from latentlab.run_figures import COMMON as FIGURES_EVERY_SCRIPT_DRAWS
from latentlab.run_figures import FIGURES

pytestmark = pytest.mark.slow  # every test here reads a script's run or starts one

COMMON = ["metrics.json", "model.pt", "page_data.js", *FIGURES_EVERY_SCRIPT_DRAWS]
# what each script writes besides: its ModelSpec's figures (and the per-epoch codes of a posterior GIF); not
# fitted_posteriors.png, drawn only when the per-image VI fits 200 images or more (these runs score 500 test
# images, so it fits 50: tests/test_inference.py draws that figure)
EXTRA = {key: [f for name in spec.figures for f in FIGURES[name] if f != "fitted_posteriors.png"]
         + (["posterior_frames.npy"] if "posterior_evolution" in spec.figures else []) for key, spec in SPECS.items()}
METRICS = ["test_mse", "test_bce", "knn_accuracy", "recon_accuracy", "sample_confidence",
           "sample_class_entropy", "fid_mnist", "train_seconds"]
VAE_METRICS = ["test_neg_elbo", "test_kl", "test_nll_iwae", "active_units", "approximation_gap", "amortization_gap"]


@pytest.mark.parametrize("key", SCRIPTS)
def test_every_file_exists_and_parses(tiny_runs, key):
    folder = tiny_runs[key]
    assert sorted(p.name for p in folder.iterdir()) == sorted(COMMON + EXTRA[key])
    for png in folder.glob("*.png"):
        img = iio.imread(png)
        assert img.ndim == 3 and min(img.shape[:2]) > 100, png.name
    m = read_metrics(folder)
    variational = SPECS[key].model.variational
    expected = METRICS + (VAE_METRICS if variational else ["gmm_test_loglik"])
    for name in expected:
        assert math.isfinite(m[name]), name
    assert (m["model"], m["latent_dim"]) == (SPECS[key].model.name, SPECS[key].latent_dim)
    assert len(m["history"]) == 2
    assert set(m["history"][0]) >= {"train_loss", "test_loss", "test_mse", "seconds"}
    assert 0 < m["test_mse"] < 0.2 and 0 <= m["knn_accuracy"] <= 1
    if variational:
        assert m["test_nll_iwae"] <= m["test_neg_elbo"]


@pytest.mark.parametrize("key", SCRIPTS)
def test_gifs_loop_forever_and_move(tiny_runs, key):
    gifs = [tiny_runs[key] / name for name in EXTRA[key] if name.endswith(".gif")]
    assert gifs  # every script draws at least one GIF
    for gif in gifs:
        frames = iio.imread(gif, index=None)
        assert len(frames) >= 60, gif.name
        assert iio.immeta(gif)["loop"] == 0, gif.name
        assert gif.stat().st_size <= 3 * 2 ** 20, gif.name
        changed = sum(not np.array_equal(a, b) for a, b in zip(frames[:-1], frames[1:]))
        assert changed >= 20, f"{gif.name}: only {changed} frames differ from the previous one"


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def test_plots_only_rewrites_everything_without_training(tiny_runs, tmp_path):
    import shutil
    folder = tmp_path / "results"
    shutil.copytree(tiny_runs["vae2"], folder)
    before, drawn = read_metrics(folder), _digest(folder)
    for p in folder.iterdir():
        if p.name not in ("model.pt", "posterior_frames.npy"):
            p.unlink()
    r = run_script("vae2", "--plots-only", *SCORED, "--out", folder)  # not --quiet: training would print
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in folder.iterdir()) == sorted(COMMON + EXTRA["vae2"])
    after = read_metrics(folder)
    assert after["history"] == before["history"] and after["train_seconds"] == before["train_seconds"]
    for k in ("test_mse", "test_neg_elbo", "test_nll_iwae", "knn_accuracy", "fid_mnist"):
        assert after[k] == pytest.approx(before[k], rel=1e-6), k
    assert not [line for line in r.stdout.splitlines() if line.startswith("epoch")], r.stdout  # no training
    assert after["plots_only"] is True and "results in" in r.stdout
    redrawn = _digest(folder)
    for name in drawn.keys() - {"metrics.json", "page_data.js"}:  # the same pictures, GIFs included
        assert redrawn[name] == drawn[name], name


def test_same_seed_same_numbers(tiny_runs, tmp_path):
    r = run_script("ae2", *TINY, "--out", tmp_path / "again")
    assert r.returncode == 0, r.stderr
    a, b = without_timings(read_metrics(tiny_runs["ae2"])), without_timings(read_metrics(tmp_path / "again"))
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_compare_models_rewrites_the_readme_table(tiny_runs, tmp_path):
    import shutil
    from compare_models import END, START
    from conftest import SPECS, assert_refused_as_subset, compare_models
    for key, spec in SPECS.items():
        dest = tmp_path / spec.results_dir
        dest.mkdir(parents=True)
        shutil.copy(tiny_runs[key] / "metrics.json", dest / "metrics.json")
    readme = f"intro\n{START}\nold table\n{END}\noutro\n"
    # the tiny runs scored 500 test digits: the README's table refuses them in one line ...
    assert_refused_as_subset(compare_models(tmp_path, readme), tmp_path, readme)
    for spec in SPECS.values():   # ... and takes the same records as full-test-set runs write them
        path = tmp_path / spec.results_dir / "metrics.json"
        path.write_text(json.dumps({**read_metrics(path.parent), "test_subset": None}))
    r = compare_models(tmp_path, readme)
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert "old table" not in text and text.startswith("intro\n") and text.endswith("outro\n")
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(SPECS)  # header + one row a model
    vae2 = read_metrics(tiny_runs["vae2"])
    assert f"{vae2['test_nll_iwae']:.1f}" in rows[2]
    assert (tmp_path / "comparison.png").stat().st_size > 10_000


def test_beta_is_recorded_and_the_bounds_stay_true(tmp_path):
    """A β-VAE run, with a KL warm-up over its first epoch: metrics.json and model.pt record β and the
    warm-up; −ELBO is still rec + KL (β = 1 in the bound). An autoencoder has no KL to warm up."""
    import torch
    out = tmp_path / "beta"
    r = run_script("vae2", *TINY, "--beta", "4", "--beta-warmup", "1", "--out", out)
    assert r.returncode == 0, r.stderr
    m = read_metrics(out)
    assert m["beta"] == 4.0 and m["beta_warmup"] == 1
    config = torch.load(out / "model.pt", weights_only=True)["config"]
    assert config["beta"] == 4.0 and config["beta_warmup"] == 1
    r = run_script("ae2", "--beta-warmup", "1", "--out", tmp_path / "ae")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--beta-warmup" in r.stderr
    assert m["test_neg_elbo"] == pytest.approx(m["test_rec"] + m["test_kl"], rel=1e-9)
    h = m["history"][0]
    assert h["train_loss"] == pytest.approx(h["train_rec"] + h["train_kl"], rel=1e-6)
    assert m["test_nll_iwae"] <= m["test_neg_elbo"]


def test_the_continuous_bernoulli_trains_and_every_bound_follows_it(tmp_path, tiny_runs):
    """--likelihood continuous-bernoulli: the 2-D VAE script exits 0; its −ELBO, IWAE and exact NLL are
    those of the other likelihood (they differ from the Bernoulli run's) and keep their order, the
    quadrature on a grid wide enough for its posteriors; the page shows its row and figures and says in
    one line why not its decoder. Scored on 100 test digits: its quadrature sums ~2,000 cells a digit."""
    import torch
    out = tmp_path / "cb"
    few = [a if a != SCORED[1] else "100" for a in TINY]
    r = run_script("vae2", *few, "--likelihood", "continuous-bernoulli", "--out", out)
    assert r.returncode == 0, r.stderr
    cb, bern = read_metrics(out), read_metrics(tiny_runs["vae2"])
    assert cb["likelihood"] == "continuous-bernoulli" and bern["likelihood"] == "bernoulli"
    assert torch.load(out / "model.pt", weights_only=True)["config"]["likelihood"] == "continuous-bernoulli"
    for key in ("test_neg_elbo", "test_nll_iwae", "test_nll_exact"):
        assert abs(cb[key] - bern[key]) > 50, (key, cb[key], bern[key])   # densities of other spaces
    assert cb["test_nll_exact"] < cb["test_nll_iwae"] + 0.05 < cb["test_neg_elbo"]
    assert cb["nll_exact_grid"]["range"] > bern["nll_exact_grid"]["range"] == 6.0 and cb["nll_exact_error"] < 0.05
    assert 0 < cb["test_mse"] < 0.1 and math.isfinite(cb["fid_mnist"])
    assert "continuous-bernoulli" in (out / "page_data.js").read_text()
    r = run_script("vae2", "--plots-only", "--test-subset", "100", "--quiet", "--out", out)   # the Bernoulli asked of it
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "continuous-bernoulli" in r.stderr


def test_lean_runs_write_only_metrics_and_2d_codes(tmp_path):
    for key, files in (("vae2", ["metrics.json", "test_codes.npy"]), ("ae32", ["metrics.json"])):
        out = tmp_path / key
        r = run_script(key, *TINY, "--lean", "--out", out)
        assert r.returncode == 0, r.stderr
        assert sorted(p.name for p in out.iterdir()) == files
        assert math.isfinite(read_metrics(out)["fid_mnist"]) and read_metrics(out)["threads"] >= 1
    codes = np.load(tmp_path / "vae2" / "test_codes.npy")
    assert codes.shape == (int(SCORED[1]), 2) and codes.dtype == np.float16  # one code per scored test digit
