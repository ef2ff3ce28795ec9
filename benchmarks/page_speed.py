"""How heavy and how fast index.html is, in headless Chromium (Debian's package, driven by Playwright).

Prints the size of everything the page loads but its pictures, the time to first render (data
loaded, weights inflated, explorers, table and gallery drawn), the milliseconds per decode of each
model's decoder in the page, and the milliseconds of one update after a stroke on the drawing pad
(the drawing made into a digit, 4 encodes, 4 decodes, 5 LeNet classifications, the nearest test
digits, the explorers redrawn). Then the "train it yourself" lab: a plain-JS matmul probe on one
thread (GFLOP/s, the ceiling of the lab's loops), the images/s of each model with both training at
once, the multiply-adds they do against that probe, where each worker's time goes, and the 5-NN
accuracy of the test pool's codes after --lab-seconds of training. Then "fit q": the seconds of the
true posterior and of each family's 300-step fit of the first digit shown and of a drawn seven, and the
longest gap between two animation frames while they run (how responsive the page stays). With
``--screenshots DIR``, also saves the page at 1280 and 390 px with a digit drawn on the pad, the lab
after its training, and the fit-q section after both fits (fitq_1280.png, fitq_390.png).

    python benchmarks/page_speed.py [--loads 5] [--lab-seconds 60] [--lab-sizes 784,128,2] [--screenshots DIR]
    python benchmarks/page_speed.py --fit-only [--screenshots DIR]
"""
import argparse
import shutil
import statistics
import sys
from pathlib import Path

import numpy as np
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "Models"))

from latentlab.page_export import FILE as PAGE_DATA  # noqa: E402
from latentlab.metrics import knn_accuracy  # noqa: E402
from latentlab.page_export import LAB_FILE  # noqa: E402
from latentlab.registry import specs  # noqa: E402

TIME_DECODES = """(name) => {
  const dim = window.latentlab.models[name].latent_dim, z = new Float32Array(dim).fill(0.3);
  for (let i = 0; i < 20; i++) window.latentlab.decode(name, z);          // warm-up (JIT)
  const t = performance.now();
  for (let i = 0; i < 200; i++) { z[0] = i / 100; window.latentlab.decode(name, z); }
  return (performance.now() - t) / 200;
}"""
TIME_UPDATES = """() => {
  const section = window.latentlab.drawSection, times = [];
  for (let i = 0; i < 25; i++) { section.update(); times.push(window.latentlab.lastUpdateMs); }
  times.sort((a, b) => a - b);
  return [times[12], times[24]];
}"""
# C = A·B (n × n) with the lab's loop (page/lab_math.js, Linear.forward): each row of C gathers the
# rows of B scaled by A's entries, four at a time, in Float32Arrays; GFLOP/s of the best of 5.
MATMUL_PROBE = """(n) => {
  const a = new Float32Array(n * n).map(() => Math.random()), b = new Float32Array(n * n).map(() => Math.random());
  const c = new Float32Array(n * n);
  let best = Infinity;
  for (let rep = 0; rep < 6; rep++) {
    const t = performance.now();
    for (let i = 0; i < n; i++) {
      const ci = i * n;
      for (let j = 0; j < n; j++) c[ci + j] = 0;
      for (let k = 0; k < n; k += 4) {
        const v0 = a[ci + k], v1 = a[ci + k + 1], v2 = a[ci + k + 2], v3 = a[ci + k + 3];
        const r0 = k * n, r1 = r0 + n, r2 = r1 + n, r3 = r2 + n;
        for (let j = 0; j < n; j++) c[ci + j] += v0 * b[r0 + j] + v1 * b[r1 + j] + v2 * b[r2 + j] + v3 * b[r3 + j];
      }
    }
    if (rep) best = Math.min(best, performance.now() - t);  // the first is the JIT's warm-up
  }
  return 2 * n * n * n / (best / 1000) / 1e9;
}"""
SEVEN = [[(60, 55), (215, 50), (120, 245)], [(100, 150), (190, 148)]]  # two strokes on the 280-px pad


def draw(tab, strokes):
    """Draw the strokes with the mouse on #draw-pad."""
    tab.locator("#draw-pad").scroll_into_view_if_needed()
    box = tab.locator("#draw-pad").bounding_box()
    for points in strokes:
        xy = [(box["x"] + x * box["width"] / 280, box["y"] + y * box["height"] / 280) for x, y in points]
        tab.mouse.move(*xy[0])
        tab.mouse.down()
        for q in xy[1:]:
            tab.mouse.move(*q, steps=8)
        tab.mouse.up()
    tab.wait_for_timeout(100)


def sizes():
    """(name, bytes) of every file the page loads at first render except images and GIFs (the lab's
    training digits load when the lab is first used)."""
    files = [REPO / "index.html", *sorted((REPO / "page").glob("*.js")), *sorted((REPO / "page").glob("*.css"))]
    files.remove(REPO / "page" / LAB_FILE)
    files += [REPO / s.results_dir / PAGE_DATA for s in specs().values()]
    return [(str(f.relative_to(REPO)), f.stat().st_size) for f in files if f.exists()]


def lab(browser, url, seconds, screenshots, sizes=None):
    """Section 5: the train-it-yourself lab, both models training at once."""
    tab = browser.new_page(viewport={"width": 1280, "height": 900})
    if sizes:
        tab.add_init_script(f"window.LATENTLAB_LAB_SIZES = [{sizes}];")
    tab.goto(url)
    tab.wait_for_function("window.latentlab && window.latentlab.ready === true")
    probe = tab.evaluate(MATMUL_PROBE, 256)
    sizes = tab.evaluate("window.latentlab.lab.sizes")
    print(f"\n5. the lab ({'-'.join(map(str, sizes))} and back, batch 64, both models at once)")
    print(f"   matmul probe, plain JS, one thread, 256 x 256: {probe:.2f} GFLOP/s")
    tab.evaluate("window.latentlab.lab.reset(0)")
    tab.evaluate("window.latentlab.lab.start()")
    tab.locator("#lab").scroll_into_view_if_needed()
    warm = min(10, seconds // 3)
    tab.wait_for_timeout(warm * 1000)
    first = tab.evaluate("window.latentlab.lab.stats()")
    tab.wait_for_timeout((seconds - warm) * 1000)
    last = tab.evaluate("window.latentlab.lab.stats()")
    if screenshots:  # while it trains, as a reader sees it
        screenshots.mkdir(parents=True, exist_ok=True)
        tab.locator("#lab").screenshot(path=str(screenshots / "lab_1280.png"))
        tab.set_viewport_size({"width": 390, "height": 844})  # the same lab, laid out for a phone
        tab.wait_for_timeout(500)
        tab.locator("#lab").screenshot(path=str(screenshots / "lab_390.png"))
    tab.evaluate("window.latentlab.lab.pause()")
    tab.wait_for_timeout(300)
    span = (last["ae"]["clock"]["wallMs"] - first["ae"]["clock"]["wallMs"]) / 1000
    for kind in ("ae", "vae"):
        a, b = first[kind], last[kind]
        rate = (b["images"] - a["images"]) / span
        c0, c1 = a["clock"], b["clock"]
        wall = c1["wallMs"] - c0["wallMs"]
        train, ticks = (c1["trainMs"] - c0["trainMs"]) / wall, (c1["tickMs"] - c0["tickMs"]) / wall
        gflops = 2 * (b["macs"] - a["macs"]) / (wall / 1000) / 1e9
        test = tab.evaluate(f"window.latentlab.lab.codes('{kind}')")
        fit = tab.evaluate(f"window.latentlab.lab.trainCodes('{kind}')")
        score = knn_accuracy(np.reshape(fit["codes"], (-1, 2)), fit["labels"],
                             np.reshape(test["codes"], (-1, 2)), test["labels"])
        within = (np.linalg.norm(np.reshape(test["codes"], (-1, 2)), axis=1) <= 3).mean()
        print(f"   {kind:3}  {rate:6.0f} images/s over {span:.0f} s   multiply-adds done: {gflops:.2f} GFLOP/s "
              f"= {gflops / probe:.0%} of the probe   worker time: {train:.0%} training, {ticks:.0%} ticks "
              f"(codes of the 2,000 test digits, 9 decodes), {1 - train - ticks:.0%} elsewhere")
        print(f"        after {seconds} s: {b['images']:,} images, rec. {b['rec']:.1f} nats, KL {b['kl']:.2f}, "
              f"5-NN accuracy of the test codes {score:.3f}, {within:.0%} of them within 3σ of N(0, I)")
    dense = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    print(f"   dense count: {6 * 2 * dense / 1e6:.2f} MFLOP a training image (AE; the VAE's encoder is a little wider); "
          "the lab skips zero inputs (blank pixels, units a ReLU switched off)")
    tab.close()


# Fit one family in the page and time it: the seconds of the true posterior (the first fit of a digit
# computes it), of the 300 steps, and the longest gap between two animation frames meanwhile.
TIME_FIT = """async (family) => {
  const f = window.latentlab.fit, gaps = [];
  let last = performance.now(), on = true;
  const tick = (t) => { gaps.push(t - last); last = t; if (on) requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  f.choose(family);
  const began = performance.now(), hadPosterior = !!f.posterior;
  const run = f.run();
  await f.exact();
  const fitBegan = performance.now();
  await run;
  on = false;
  const fit = f.fits[family];
  return {posterior: hadPosterior ? 0 : (fitBegan - began) / 1000, fit: (performance.now() - fitBegan) / 1000,
          compute: fit.seconds, worstGapMs: Math.max(...gaps), elbo: fit.curve[fit.curve.length - 1][1],
          logPx: -f.posterior.negLogPx, encoder: f.encoderElbo};
}"""


def fitq(browser, url, screenshots):
    print("\n6. fit q (per-image VI on the VAE 2-D, 300 Adam steps a family)")
    for width in ((1280, 390) if screenshots else (1280,)):
        tab = browser.new_page(viewport={"width": width, "height": 900})
        tab.goto(url)
        tab.wait_for_function("window.latentlab && window.latentlab.ready === true")
        digits = [("first digit shown", None)] + ([("drawn seven", SEVEN)] if width == 1280 else [])
        for what, strokes in digits:
            if strokes:
                draw(tab, strokes)
            for family in ("diagonal", "full"):
                r = tab.evaluate(TIME_FIT, family)
                if width == 1280:
                    print(f"   {what:17} {family:8}: true posterior {r['posterior']:.1f} s, fit {r['fit']:.1f} s "
                          f"({r['compute']:.1f} s computing), worst frame gap {r['worstGapMs']:.0f} ms; "
                          f"ELBO {r['encoder']:.2f} -> {r['elbo']:.2f}, log p(x) {r['logPx']:.2f}")
            if screenshots and not strokes:
                screenshots.mkdir(parents=True, exist_ok=True)
                tab.locator("#fit").screenshot(path=str(screenshots / f"fitq_{width}.png"))
        tab.close()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--loads", type=int, default=5, help="page loads to time (default: 5)")
    p.add_argument("--lab-seconds", type=int, default=60,
                   help="seconds the lab trains both models before its codes are scored (default: 60)")
    p.add_argument("--lab-sizes", default=None, metavar="784,...,2",
                   help="the lab's encoder widths to try instead of the page's (default: the page's)")
    p.add_argument("--screenshots", type=Path, default=None, metavar="DIR",
                   help="save page_1280.png and page_390.png (viewport) and *_full.png into DIR (default: none)")
    p.add_argument("--fit-only", action="store_true", help="run only section 6, fit q (default: all)")
    args = p.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("page_speed.py: error: no Chromium here; apt-get install chromium")

    print("1. what the page loads at first render (images and GIFs not counted)")
    listed = sizes()
    for name, size in listed:
        print(f"   {size / 2 ** 20:7.2f} MiB  {name}")
    print(f"   {sum(s for _, s in listed) / 2 ** 20:7.2f} MiB  total (budget 10.5 MiB)")
    print(f"   and {(REPO / 'page' / LAB_FILE).stat().st_size / 2 ** 20:.2f} MiB page/{LAB_FILE} when the lab is first used")

    url = (REPO / "index.html").as_uri()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True)
        if args.fit_only:
            fitq(browser, url, args.screenshots)
            browser.close()
            return
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        renders = []
        for _ in range(args.loads):
            tab.goto(url)
            tab.wait_for_function("window.latentlab && window.latentlab.ready === true")
            renders.append(tab.evaluate("window.latentlab.renderMs"))
        print(f"\n2. first render: median {statistics.median(renders):.0f} ms, worst {max(renders):.0f} ms "
              f"over {args.loads} loads")
        print("\n3. one decode in the page")
        for name in tab.evaluate("Object.keys(window.latentlab.models)"):
            print(f"   {name:6} {tab.evaluate(TIME_DECODES, name):6.2f} ms")
        draw(tab, SEVEN)
        median, worst = tab.evaluate(TIME_UPDATES)
        print(f"\n4. one update after a stroke: median {median:.1f} ms, worst {worst:.1f} ms over 25")
        lab(browser, url, args.lab_seconds, args.screenshots, args.lab_sizes)
        fitq(browser, url, args.screenshots)
        if args.screenshots:
            args.screenshots.mkdir(parents=True, exist_ok=True)
            for width, height in ((1280, 900), (390, 844)):
                shot = browser.new_page(viewport={"width": width, "height": height})
                shot.goto(url)
                shot.wait_for_function("window.latentlab && window.latentlab.ready === true")
                draw(shot, SEVEN)
                shot.evaluate("window.scrollTo(0, 0)")
                shot.screenshot(path=str(args.screenshots / f"page_{width}.png"))
                for img in shot.query_selector_all("img"):  # lazy images: load them for the full page
                    img.evaluate("(i) => { i.loading = 'eager'; }")
                shot.wait_for_function("Array.from(document.images).every((i) => i.complete)")
                shot.screenshot(path=str(args.screenshots / f"page_{width}_full.png"), full_page=True)
            print(f"\nscreenshots in {args.screenshots}")
        browser.close()


if __name__ == "__main__":
    main()
