// Loads page/shared_data.js and each results folder's page_data.js, inflates the weights, then builds
// the drawing pad, the explorers, the table and the gallery. A model whose folder has no data yet
// gets a line telling which script to run; the rest works. The tests' hooks on window.latentlab:
// models, decode(name, z), encode(name, pixels), classify(pixels), drawn(), clearDrawing(),
// preprocess(ink, w, h), exactPosterior(name, pixels), viGradient(...), lastUpdateMs, renderMs, lab (page/lab.js)
// and fit (page/fitq.js).
(function () {
  "use strict";
  const ll = (window.latentlab = window.latentlab || {});
  const MODELS = window.LATENTLAB_MODELS;

  // A <script> per data file (fetch() is refused on file://); resolves true when it loaded.
  function load(src) {
    return new Promise((resolve) => {
      const s = document.createElement("script");
      s.src = `${encodeURI(src)}?v=${Date.now()}`;  // never a stale copy on reload
      s.onload = () => resolve(true);
      s.onerror = () => resolve(false);
      document.head.appendChild(s);
    });
  }

  // One explorer per model in the container (or the line that says which script to run);
  // returns {key: explorer}.
  function panels(containerId, models, datasets, shown, make) {
    const box = document.getElementById(containerId), made = {};
    box.innerHTML = "";
    for (const m of models) {
      const panel = document.createElement("div");
      panel.className = "panel";
      box.appendChild(panel);
      if (datasets[m.key]) {
        made[m.key] = make(panel, datasets[m.key]);
      } else if (shown[m.key]) {  // trained, but with layers page/nn.js does not run
        panel.innerHTML = `<h3>${m.label}</h3><p class="missing">${ll.gallery.both(
          `Trang không chạy mô hình này, chỉ hiện hàng của nó trong bảng và các hình. Lý do: ${shown[m.key].unsupported}`,
          shown[m.key].unsupported)}</p>`;
      } else {
        panel.innerHTML = `<h3>${m.label}</h3><p class="missing">${ll.gallery.runLine(m, null)}</p>`;
      }
    }
    return made;
  }

  // The shared pool of test digits: labels, levels (0..15, 784 a digit), and pixels(i) as 784 intensities.
  async function testPool(shared) {
    const levels = await ll.nn.inflate(shared.pool.levels);
    return {index: shared.pool.index, labels: ll.nn.bytes(shared.pool.labels), levels,
            pixels: (i) => Float32Array.from(levels.subarray(784 * i, 784 * (i + 1)), (v) => v / 15)};
  }

  // Hovering or tapping test point i in one 2-D scatter rings it in both and shows it below them.
  function linker(explorers, pool, lenet) {
    const box = document.getElementById("linked"), canvas = box.querySelector("canvas");
    return (i) => {
      Object.values(explorers).forEach((e) => e.setLinked(i));
      const image = pool.pixels(i);
      ll.nn.paintDigit(canvas, image);
      box.querySelector(".what").innerHTML =
        `<span class="vi">Ảnh test #${pool.index[i]}, chữ số ${pool.labels[i]}</span>` +
        `<span class="en">Test image #${pool.index[i]}, digit ${pool.labels[i]}</span> · ${ll.verdict(lenet.classify(image))}`;
      box.classList.add("on");
      ll.linked = i;
    };
  }

  function legend() {
    document.getElementById("digit-legend").innerHTML = ll.DIGIT_COLORS.map(
      (c, d) => `<span><i style="background:${c}"></i>${d}</span>`).join("");
  }

  function languageToggle() {
    const button = document.getElementById("lang");
    const set = (en) => {
      document.body.classList.toggle("lang-en", en);
      document.documentElement.lang = en ? "en" : "vi";
      try { localStorage.setItem("latentlab-lang", en ? "en" : "vi"); } catch (e) { /* file:// may refuse */ }
    };
    let saved = null;
    try { saved = localStorage.getItem("latentlab-lang"); } catch (e) { /* idem */ }
    set(saved === "en");
    button.addEventListener("click", () => set(!document.body.classList.contains("lang-en")));
  }

  async function main() {
    languageToggle();
    const [sharedLoaded, ...present] = await Promise.all(
      ["page/shared_data.js", ...MODELS.map((m) => `${m.dir}/page_data.js`)].map(load));
    const all = window.LATENTLAB_DATA || {}, shared = window.LATENTLAB_SHARED;
    if (!sharedLoaded || !shared) throw new Error("page/shared_data.js is missing: run python Models/train_classifier.py --stats-only");
    const lenet = new ll.nn.LeNet(shared.classifier.names, await ll.nn.unpack(shared.classifier.packed));
    const pool = await testPool(shared);
    // shown: every model with results (its table row and figures); datasets: those the page also runs
    const shown = {}, datasets = {}, decoders = {}, encoders = {}, poolCodes = {};
    await Promise.all(MODELS.map(async (m, i) => {
      const d = present[i] && all[m.key];
      if (!d) return;
      shown[m.key] = d;
      if (d.unsupported) return;
      datasets[m.key] = d;
      decoders[m.key] = new ll.nn.Decoder(d.decoder.sizes, await ll.nn.unpack(d.decoder.packed), d.decoder.slope || 0);
      encoders[m.key] = new ll.nn.Encoder(d.encoder.sizes, await ll.nn.unpack(d.encoder.packed), d.variational,
                                          d.encoder.slope || 0);
      poolCodes[m.key] = d.latent_dim === 2 ? ll.nn.float16(d.scatter.codes) : (await ll.nn.unpack(d.pool_codes))[0];
    }));
    legend();
    const explorers2d = {}, link = linker(explorers2d, pool, lenet);
    let draw = null;
    // what the VAE's true-posterior button integrates: the drawing, else the linked test digit
    const source = () => (draw && draw.current ? {pixels: draw.current, source: "drawing",
                                                  what: `<span class="vi">Hình vẽ</span><span class="en">Drawing</span>`}
      : ll.linked !== undefined ? {pixels: pool.pixels(ll.linked), source: "test",
                                   what: `<span class="vi">Ảnh test</span><span class="en">Test image</span> #${pool.index[ll.linked]}`}
      : null);
    Object.assign(explorers2d, panels("panels-2d", MODELS.filter((m) => m.latent_dim === 2), datasets, shown,
      (panel, d) => new ll.Explorer2D(panel, d, decoders[d.key], lenet, pool.labels, link,
                                      d.exact_view ? {encoder: encoders[d.key], source} : null)));
    const explorers32d = panels("panels-32d", MODELS.filter((m) => m.latent_dim !== 2), datasets, shown,
      (panel, d) => new ll.Explorer32D(panel, d, decoders[d.key], lenet));
    const explorers = {...explorers2d, ...explorers32d};
    const drawModels = MODELS.filter((m) => datasets[m.key]).map((m) => ({
      key: m.key, label: m.label, kind: datasets[m.key].kind, variational: datasets[m.key].variational, latent_dim: m.latent_dim,
      encoder: encoders[m.key], decoder: decoders[m.key], poolCodes: poolCodes[m.key], explorer: explorers[m.key]}));
    draw = new ll.DrawSection(document.getElementById("draw-area"), drawModels, pool, lenet);
    // the fit-q panel runs on the first 2-D VAE whose true posterior the page can compute
    const fitModel = MODELS.find((m) => datasets[m.key] && datasets[m.key].exact_view);
    if (fitModel) {
      const fit = new ll.FitPanel(document.getElementById("fit-area"), decoders[fitModel.key], encoders[fitModel.key], pool);
      draw.onChange = (x) => fit.setDrawing(x);
      Object.values(explorers2d).forEach((e) => { e.onPick = (i) => fit.setTest(i); });
      ll.fit = fit;
    } else {
      const vae2 = MODELS.find((m) => m.key === "vae2") || MODELS[0], why = shown[vae2.key] && shown[vae2.key].unsupported;
      document.getElementById("fit-area").innerHTML = `<p class="missing">${why
        ? ll.gallery.both(`Trang không chạy VAE 2-D này. Lý do: ${why}`, `The page does not run this VAE 2-D: ${why}`)
        : ll.gallery.runLine(vae2, null)}</p>`;
    }
    ll.lab = ll.labHooks(new ll.Lab(document.getElementById("lab-area"), pool));
    ll.gallery.table(MODELS, shown);
    ll.gallery.gallery(MODELS, shown);

    ll.models = {};
    for (const key of Object.keys(datasets)) {
      const d = datasets[key];
      ll.models[key] = {label: d.label, kind: d.kind, variational: d.variational, latent_dim: d.latent_dim};
    }
    ll.missing = MODELS.filter((m) => !shown[m.key]).map((m) => m.key);
    ll.unsupported = MODELS.filter((m) => shown[m.key] && !datasets[m.key]).map((m) => m.key);
    ll.data = datasets;
    ll.decode = (name, z) => Array.from(decoders[name].decode(Float32Array.from(z)));
    ll.encode = (name, pixels) => {
      const c = encoders[name].encode(Float32Array.from(pixels));
      return {mean: Array.from(c.mean), logvar: c.logvar && Array.from(c.logvar)};
    };
    ll.classify = (pixels) => lenet.classify(Float32Array.from(pixels));
    ll.drawn = () => draw.current && Array.from(draw.current);
    ll.clearDrawing = () => { draw.pad.clear(); draw.update(); };
    ll.preprocess = (ink, w, h) => { const out = ll.drawing.mnistStyle(Float32Array.from(ink), w, h); return out && Array.from(out); };
    ll.drawSection = draw;
    ll.viGradient = (name, pixels, family, theta, eps) => {  // the fit's ELBO estimate and gradient, for the tests
      const e = encoders[name].encode(Float32Array.from(pixels)), q = new ll.vi.Q(family, e.mean, e.logvar);
      q.theta.set(theta);
      const grad = new Float64Array(q.theta.length);
      const value = ll.vi.elboAndGradient(new ll.vi.Joint(decoders[name], Float32Array.from(pixels)), q,
                                          eps.map((v) => Float64Array.from(v)), grad);
      return {value, grad: Array.from(grad), mean: Array.from(e.mean), logvar: Array.from(e.logvar)};
    };
    ll.exactPosterior = async (name, pixels) => {  // the true posterior's figures for the tests
      const r = await ll.truePosterior(decoders[name], encoders[name], Float32Array.from(pixels));
      return {negLogPx: r.negLogPx, negElbo: r.negElbo, mode: r.mode};
    };
    ll.renderMs = performance.now();  // since navigation started
    ll.ready = true;
    document.body.classList.add("ready");
  }

  main();
})();
