"""index.html in a real browser (Debian's Chromium driven by Playwright), opened over file:// from the
committed results and from tiny real runs: no console errors, the page's decoder agrees with torch,
the explorers answer to dragging, tapping and sliding, and a new run shows after a reload.

Without Chromium (``apt-get install chromium``) the browser tests skip with one line; the others run.
"""
import base64
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, SPECS, read_metrics, run_script
from latentlab.checkpoints import load_model
from latentlab.metrics import table_cells
from latentlab.page import FILE as PAGE_DATA

BUDGET = 8 * 2 ** 20  # everything the page loads but its pictures


def read_page_data(folder):
    """The dict a results folder's page_data.js files under window.LATENTLAB_DATA."""
    text = (Path(folder) / PAGE_DATA).read_text(encoding="utf-8")
    return json.loads(text[text.index("] = ") + 4:].rstrip().rstrip(";"))


def page_models():
    text = (REPO / "page" / "models.js").read_text(encoding="utf-8")
    return re.findall(r'key: "(\w+)".*?dir: "([^"]+)",\s*script: "([^"]+)", latent_dim: (\d+)', text, re.S)


# --------------------------------------------------------------------------- without a browser

def test_the_page_lists_the_registry_models():
    assert page_models() == [(k, s.results_dir, s.script, str(s.latent_dim)) for k, s in SPECS.items()]


def test_committed_page_data_fits_the_budget_and_matches_its_run():
    loaded = [REPO / "index.html", *(REPO / "page").glob("*.js"), *(REPO / "page").glob("*.css")]
    loaded += [REPO / s.results_dir / PAGE_DATA for s in SPECS.values()]
    assert sum(p.stat().st_size for p in loaded) <= BUDGET
    for key, spec in SPECS.items():
        data = read_page_data(REPO / spec.results_dir)
        assert data["table"]["cells"] == table_cells(read_metrics(REPO / spec.results_dir)), key
        assert all((REPO / spec.results_dir / name).exists() for name in data["figures"])


# --------------------------------------------------------------------------- the browser

def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    path = _chromium()
    if path is None:
        pytest.skip("Chromium is not installed (apt-get install chromium): browser tests skipped")
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


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_runs):
    """index.html and page/ beside the four tiny runs' results folders, laid out as in the repo."""
    root = tmp_path_factory.mktemp("site")
    shutil.copy(REPO / "index.html", root)
    shutil.copytree(REPO / "page", root / "page")
    for key, spec in SPECS.items():
        shutil.copytree(tiny_runs[key], root / spec.results_dir)
    return root


def _codes_to_try(folder, spec, n, rng):
    """n codes where the model puts digits and between them: the 2-D explorer's whole view, or
    random mixtures of the 32-D explorer's start codes plus noise."""
    data = read_page_data(folder)
    if spec.latent_dim == 2:
        (x0, x1), (y0, y1) = data["scatter"]["view"]
        return np.stack([rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)], 1)
    codes = np.frombuffer(base64.b64decode(data["thumbs"]["codes"]), "<f4").reshape(-1, spec.latent_dim)
    a = rng.uniform(size=(n, 1))
    mixed = a * codes[rng.integers(len(codes), size=n)] + (1 - a) * codes[rng.integers(len(codes), size=n)]
    return mixed + rng.standard_normal(mixed.shape) * codes.std(0)


def _decode_agrees_with_torch(page, folder, spec, n=100):
    """The page's decode of n codes against torch's float32 decode of the same model.pt."""
    model, _ = load_model(folder / "model.pt", spec)
    z = _codes_to_try(folder, spec, n, np.random.default_rng(0)).astype(np.float32)
    with torch.no_grad():
        expected = torch.sigmoid(model.decode(torch.from_numpy(z))).numpy()
    got = np.array(page.js(f"(zs) => zs.map((z) => window.latentlab.decode('{spec.key}', z))", z.tolist()))
    diff = np.abs(got - expected)
    assert got.shape == (n, 784)
    assert diff.max() <= 0.02 and diff.mean() <= 0.002, (spec.key, diff.max(), diff.mean())


def test_committed_results_open_without_errors_and_decode_like_torch(browser):
    page = Page(browser, REPO)
    assert page.errors == []
    assert page.js("window.latentlab.models") == {
        k: {"label": s.label, "kind": s.kind, "latent_dim": s.latent_dim} for k, s in SPECS.items()}
    for spec in SPECS.values():
        _decode_agrees_with_torch(page, REPO / spec.results_dir, spec)
    page.close()


def test_tiny_runs_decode_like_torch_and_the_explorers_answer(browser, site):
    page = Page(browser, site)
    assert page.errors == [] and page.js("window.latentlab.missing") == []
    for spec in SPECS.values():
        _decode_agrees_with_torch(page, site / spec.results_dir, spec)
    for key in ("ae2", "vae2"):  # drag the marker across the plane, then nudge it with a key
        plane, digit = f"#explore-{key}-plane", f"#explore-{key}-digit"
        before, coords = page.canvas(digit), page.tab.inner_text(f"#explore-{key}-coords")
        box = page.box(plane)
        page.tab.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
        page.tab.mouse.down()
        page.tab.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + box["height"] * 0.25, steps=8)
        page.tab.mouse.up()
        dragged = page.canvas(digit)
        assert dragged != before and page.tab.inner_text(f"#explore-{key}-coords") != coords, key
        page.tab.locator(plane).press("Shift+ArrowLeft")
        assert page.canvas(digit) != dragged, key
        view = page.canvas(plane)
        page.tab.locator(plane).press("+")  # zoom in about the marker: the plane is redrawn
        assert page.canvas(plane) != view, key
    for key in ("ae32", "vae32"):  # a slider, the interpolation and the sample button
        digit = f"#explore-{key}-digit"
        before = page.canvas(digit)
        box = page.box(f"#explore-{key}-dir-0")
        page.tab.mouse.click(box["x"] + box["width"] * 0.95, box["y"] + box["height"] / 2)
        slid = page.canvas(digit)
        assert slid != before, key
        page.tab.click(f"#explore-{key}-pick-B")
        page.tab.click(f"#explore-{key}-thumbs .thumb:nth-child(8)")
        box = page.box(f"#explore-{key}-interp")
        page.tab.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
        halfway = page.canvas(digit)
        assert halfway != slid and float(page.tab.inner_text(f"#explore-{key}-interp-value")) > 0.2, key
        page.tab.click(f"#explore-{key}-sample")
        assert page.canvas(digit) != halfway, key
    assert page.errors == []
    page.close()


def test_touch_moves_the_marker_on_a_phone_screen(browser, site):
    page = Page(browser, site, width=390, touch=True)
    assert page.js("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone
    key = "vae2"
    before = page.canvas(f"#explore-{key}-digit")
    box = page.box(f"#explore-{key}-plane")
    page.tab.touchscreen.tap(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.7)
    assert page.canvas(f"#explore-{key}-digit") != before
    assert page.errors == []
    page.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_screenshots_are_not_blank(browser, width, tmp_path):
    page = Page(browser, REPO, width=width)
    path = tmp_path / f"page_{width}.png"
    page.tab.screenshot(path=str(path), full_page=True)
    import imageio.v3 as iio
    img = iio.imread(path)
    assert img.shape[1] == width and img.shape[0] > 2000
    assert img[..., :3].std() > 30 and len(np.unique(img[::4, ::4, 0])) > 50  # text, plots and digits
    page.close()


def test_a_new_run_shows_after_a_reload(browser, site):
    spec = SPECS["ae2"]
    folder = site / spec.results_dir
    page = Page(browser, site)
    row = f"#metrics-table tr[data-model={spec.key}] td"
    before = page.tab.locator(row).all_inner_texts()
    assert before == table_cells(read_metrics(folder))
    r = run_script("ae2", "--epochs", "1", "--train-subset", "1000", "--seed", "7", "--quiet", "--out", folder)
    assert r.returncode == 0, r.stderr
    page.load()
    after = page.tab.locator(row).all_inner_texts()
    assert after == table_cells(read_metrics(folder)) and after != before
    assert "train subset 1000" in page.tab.inner_text(f".card[data-model={spec.key}] .run")
    assert page.errors == []
    page.close()


def test_a_model_without_results_says_which_script_to_run(browser, site, tmp_path):
    root = tmp_path / "partial"
    shutil.copytree(site, root)
    missing = SPECS["vae32"]
    (root / missing.results_dir / PAGE_DATA).unlink()
    page = Page(browser, root)
    assert page.js("window.latentlab.missing") == ["vae32"]
    assert sorted(page.js("Object.keys(window.latentlab.models)")) == ["ae2", "ae32", "vae2"]
    assert f"python Models/{missing.script}" in page.tab.inner_text("#panels-32d")
    assert f"python Models/{missing.script}" in page.tab.inner_text("#metrics-table")
    # the only error is the browser's own line for the absent file; the rest of the page works
    assert all("ERR_FILE_NOT_FOUND" in e for e in page.errors), page.errors
    assert len(page.js("window.latentlab.decode('ae32', new Array(32).fill(0))")) == 784
    page.close()
