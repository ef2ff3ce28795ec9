"""How heavy and how fast index.html is, in headless Chromium (Debian's package, driven by Playwright).

Prints the size of everything the page loads but its pictures, the time to first render (data
loaded, weights inflated, explorers, table and gallery drawn), the milliseconds per decode of each
model's decoder in the page, and the milliseconds of one update after a stroke on the drawing pad
(the drawing made into a digit, 4 encodes, 4 decodes, 5 LeNet classifications, the nearest test
digits, the explorers redrawn). With ``--screenshots DIR``, also saves the page at 1280 and 390 px
with a digit drawn on the pad.

    python benchmarks/page_speed.py [--loads 5] [--screenshots DIR]
"""
import argparse
import shutil
import statistics
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "Models"))

from latentlab.page import FILE as PAGE_DATA  # noqa: E402
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
    """(name, bytes) of every file the page loads except images and GIFs."""
    files = [REPO / "index.html", *sorted((REPO / "page").glob("*.js")), *sorted((REPO / "page").glob("*.css"))]
    files += [REPO / s.results_dir / PAGE_DATA for s in specs().values()]
    return [(str(f.relative_to(REPO)), f.stat().st_size) for f in files if f.exists()]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--loads", type=int, default=5, help="page loads to time (default: 5)")
    p.add_argument("--screenshots", type=Path, default=None, metavar="DIR",
                   help="save page_1280.png and page_390.png (viewport) and *_full.png into DIR (default: none)")
    args = p.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("page_speed.py: error: no Chromium here; apt-get install chromium")

    print("1. what the page loads (images and GIFs not counted)")
    listed = sizes()
    for name, size in listed:
        print(f"   {size / 2 ** 20:7.2f} MiB  {name}")
    print(f"   {sum(s for _, s in listed) / 2 ** 20:7.2f} MiB  total (budget 10 MiB)")

    url = (REPO / "index.html").as_uri()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True)
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
