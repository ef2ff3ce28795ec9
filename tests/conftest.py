"""Shared fixtures: small real-data runs of each script, made once per test session.

Tests marked ``slow`` (see pyproject.toml) are the ones ``python -m pytest -m "not slow"`` leaves out:
those that start a script or a sweep in a subprocess carry the mark themselves, and every test that
uses a fixture in SLOW_FIXTURES, directly or through another fixture, is marked here."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from latentlab.registry import specs

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "Models"
SPECS = specs()
SCRIPTS = {key: spec.script for key, spec in SPECS.items()}
# Two short epochs on a third of the data: training costs ~1 s, and the 2-D VAE's posteriors are already
# narrow, so its exact likelihood takes seconds; after one epoch on 2,000 digits they are as wide as the
# prior and the quadrature took 50 s of a 66 s run. Scored on the first 500 test digits (--test-subset):
# evaluation, not training, is what a tiny run spends its time on.
SCORED = ["--test-subset", "500"]
TINY = ["--epochs", "2", "--train-subset", "20000", *SCORED, "--quiet"]
# Fixtures that train through subprocesses (tiny_runs), drive Chromium (browser) or mount a tmpfs
# (test_reliability.small_disk).
SLOW_FIXTURES = {"tiny_runs", "browser", "small_disk"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def run_script(key, *args, timeout=900, **kw):
    """Run one model script in a subprocess, as a user would."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, str(MODELS / SCRIPTS[key]), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO, **kw)


def compare_models(root, readme):
    """Write ``readme`` as ``root``/README.md, then run compare_models.py over ``root`` as a user would."""
    (Path(root) / "README.md").write_text(readme, encoding="utf-8")
    return subprocess.run([sys.executable, str(MODELS / "compare_models.py"), "--root", str(root)],
                          capture_output=True, text=True, timeout=900)


def assert_refused_as_subset(r, root, readme):
    """compare_models ended in one line on runs scored on part of the test set, README.md untouched."""
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "--test-subset" in r.stderr, r.stderr
    assert (Path(root) / "README.md").read_text(encoding="utf-8") == readme


def read_metrics(folder):
    return json.loads((Path(folder) / "metrics.json").read_text())


def without_timings(metrics):
    """metrics.json without its wall-clock times: what must be equal between two runs that should match."""
    m = {k: v for k, v in metrics.items() if k not in ("train_seconds", "eval_seconds", "run_seconds",
                                                       "figure_seconds", "vi_seconds")}
    m["history"] = [{k: v for k, v in h.items() if k != "seconds"} for h in metrics["history"]]
    return m


def small_mnist(n_train, n_test):
    """Real MNIST cut to its first ``n_train`` training and ``n_test`` test digits."""
    from latentlab.data import load_mnist
    d = load_mnist()
    d.x_train, d.y_train = d.x_train[:n_train], d.y_train[:n_train]
    d.x_test, d.y_test = d.x_test[:n_test], d.y_test[:n_test]
    return d


def small_trained(kind, latent_dim, n_train, n_test, epochs):
    """A model trained briefly (seed 0) on the first ``n_train`` real digits: (model in eval mode, the
    cut data, whose first ``n_test`` test digits score it)."""
    import torch
    from latentlab.models import build_model
    from latentlab.training import fit
    torch.manual_seed(0)
    d = small_mnist(n_train, n_test)
    model = build_model(kind, latent_dim)
    fit(model, d, epochs=epochs, batch_size=128, lr=2e-3, progress="none")
    return model.eval(), d


def small_trained_vae(latent_dim, n_train, n_test, epochs):
    """``small_trained`` for a VAE: (model in eval mode, test images)."""
    model, d = small_trained("vae", latent_dim, n_train, n_test, epochs)
    return model, d.x_test


class TinyRuns(dict):
    """{key: results folder} of each script run once with ``TINY`` into a temporary folder, made the
    first time a test asks for that key: a test that reads one folder waits for one run."""

    def __init__(self, tmp_path_factory):
        super().__init__()
        self.tmp = tmp_path_factory

    def __missing__(self, key):
        folder = self.tmp.mktemp(key) / "results"
        r = run_script(key, *TINY, "--out", folder)
        assert r.returncode == 0, r.stderr
        self[key] = folder
        return folder


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """The tests' own small runs of the scripts (``TinyRuns``): no test reads the results folders a
    user's run rewrites, only these."""
    return TinyRuns(tmp_path_factory)


# --------------------------------------------------------------------------- the browser

def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def unavailable(reason, tests):
    """Skip ``tests`` ("browser", "SLURM") with one line, or fail them with it on CI, where what they
    need must be there."""
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{reason}, and CI is set: {tests} tests fail", pytrace=False)
    pytest.skip(f"{reason}: {tests} tests skipped")


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, driven by Playwright (test_page.py, test_lab.py)."""
    try:
        from playwright import sync_api
    except ImportError:
        unavailable("playwright is not installed (pip install -r requirements.txt)", "browser")
    path = _chromium()
    if path is None:
        unavailable("Chromium is not installed (Debian's chromium package; .ci/run installs it)", "browser")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, headless=True)
        yield b
        b.close()


class Page:
    """One tab on index.html that records console errors and uncaught exceptions."""

    def __init__(self, browser, root, width=1280, touch=False):
        self.context = browser.new_context(viewport={"width": width, "height": 900}, has_touch=touch)
        self.tab = self.context.new_page()
        self.errors = []
        self.tab.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.tab.on("pageerror", lambda e: self.errors.append(str(e)))
        self.url = (Path(root) / "index.html").as_uri()
        self.load()

    def load(self):
        self.tab.goto(self.url)
        self.tab.wait_for_function("window.latentlab && window.latentlab.ready === true", timeout=30_000)

    def js(self, expression, arg=None):
        return self.tab.evaluate(expression, arg)

    def box(self, selector):
        """The element's box in the viewport, scrolled into view first (the mouse acts only there)."""
        self.tab.locator(selector).scroll_into_view_if_needed()
        return self.tab.locator(selector).bounding_box()

    def canvas(self, selector):
        return self.js("(s) => document.querySelector(s).toDataURL()", selector)

    def close(self):
        self.context.close()
