// "Where does my digit land?": the drawing pad's section. After every stroke the drawing is made
// into an MNIST digit (drawing.js), the four encoders place it (the AE at a point, the VAE as a
// Gaussian), the four decoders reconstruct it, the LeNet judges the drawing and each reconstruction,
// each model lists the 5 pool digits nearest to the drawing in its own code space, and the
// explorers take the drawing's code as their start. latentlab.lastUpdateMs times one such update.
(function () {
  "use strict";
  const ll = (window.latentlab = window.latentlab || {});
  const NEIGHBOURS = 5;

  function verdict(probs) {
    let best = 0;
    for (let c = 1; c < 10; c++) if (probs[c] > probs[best]) best = c;
    return `LeNet: <b>${best}</b> (${Math.round(100 * probs[best])}%)`;
  }

  function digitCanvas(cls) {
    const c = document.createElement("canvas");
    c.width = c.height = 28;
    c.className = cls;
    return c;
  }

  // The indices of the k pool codes nearest to z (squared Euclidean distance), nearest first.
  function nearest(codes, dim, z, k) {
    const n = codes.length / dim, best = [];
    for (let i = 0; i < n; i++) {
      let d = 0;
      for (let j = 0; j < dim; j++) { const t = codes[i * dim + j] - z[j]; d += t * t; }
      if (best.length < k || d < best[best.length - 1][0]) {
        best.push([d, i]);
        best.sort((a, b) => a[0] - b[0]);
        if (best.length > k) best.pop();
      }
    }
    return best.map(([, i]) => i);
  }

  class DrawSection {
    // models: [{key, label, kind, latent_dim, encoder, decoder, poolCodes}], pool: {labels, pixels(i)}
    constructor(root, models, pool, lenet) {
      this.models = models;
      this.pool = pool;
      this.lenet = lenet;
      root.innerHTML = `
        <div class="drawbox">
          <canvas id="draw-pad" aria-label="vẽ một chữ số / draw a digit"></canvas>
          <div class="drawside">
            <button type="button" id="draw-clear"><span class="vi">Xoá</span><span class="en">Clear</span></button>
            <div class="seen">
              <span class="vi">Mô hình thấy</span><span class="en">What the models see</span>
              <canvas class="digit small" id="draw-seen" width="28" height="28"></canvas>
              <div class="verdict" id="draw-verdict"></div>
            </div>
          </div>
        </div>
        <div class="drawmodels" id="draw-models"></div>`;
      this.seen = root.querySelector("#draw-seen");
      this.verdictBox = root.querySelector("#draw-verdict");
      const box = root.querySelector("#draw-models");
      this.rows = models.map((m) => {
        const row = document.createElement("div");
        row.className = "drawmodel";
        row.innerHTML = `<h4>${m.label}</h4>
          <div class="recon"></div><div class="verdict"></div><div class="where"></div>
          <div class="near"><span class="vi">5 ảnh test gần nhất trong không gian mã</span>
            <span class="en">5 nearest test digits in its code space</span><div class="nearimgs"></div></div>`;
        const recon = digitCanvas("digit small");
        row.querySelector(".recon").appendChild(recon);
        const near = Array.from({length: NEIGHBOURS}, () => digitCanvas("tiny"));
        near.forEach((c) => row.querySelector(".nearimgs").appendChild(c));
        box.appendChild(row);
        return {recon, near, verdict: row.querySelector(".verdict"), where: row.querySelector(".where"),
                nearBox: row.querySelector(".nearimgs")};
      });
      this.pad = new ll.drawing.Pad(root.querySelector("#draw-pad"), () => this.update());
      root.querySelector("#draw-clear").addEventListener("click", () => this.pad.clear());
      this.current = null;
      this.update();
    }

    update() {
      const began = performance.now(), x = this.pad.digit();
      this.current = x;
      this.seen.classList.toggle("blank", !x);
      ll.nn.paintDigit(this.seen, x || new Float32Array(784));
      this.verdictBox.innerHTML = x ? verdict(this.lenet.classify(x)) :
        `<span class="vi">Hãy vẽ một chữ số</span><span class="en">Draw a digit</span>`;
      this.models.forEach((m, k) => {
        const row = this.rows[k];
        if (!x) {
          ll.nn.paintDigit(row.recon, new Float32Array(784));
          row.verdict.innerHTML = row.where.innerHTML = "";
          row.nearBox.classList.add("blank");
          if (m.explorer.showDrawn) m.explorer.showDrawn(null);
          return;
        }
        const code = m.encoder.encode(x), image = Float32Array.from(m.decoder.decode(code.mean));
        const probs = this.lenet.classify(image);
        ll.nn.paintDigit(row.recon, image);
        row.verdict.innerHTML = verdict(probs);
        row.where.textContent = describe(code);
        row.nearBox.classList.remove("blank");
        nearest(m.poolCodes, m.latent_dim, code.mean, NEIGHBOURS).forEach((i, j) => {
          ll.nn.paintDigit(row.near[j], this.pool.pixels(i));
          row.near[j].title = `${this.pool.labels[i]}`;
        });
        m.explorer.showDrawn(code, image, probs);
      });
      ll.lastUpdateMs = performance.now() - began;
      if (this.onChange) this.onChange(x);  // the fit-q panel takes the new drawing
    }
  }

  function describe(code) {
    const f = (v) => v.toFixed(2);
    if (code.mean.length > 2) return `‖z‖ = ${f(Math.hypot(...code.mean))}`;
    if (!code.logvar) return `z = (${f(code.mean[0])}, ${f(code.mean[1])})`;
    const s = code.logvar.map((v) => Math.exp(0.5 * v));
    return `μ = (${f(code.mean[0])}, ${f(code.mean[1])}), σ = (${f(s[0])}, ${f(s[1])})`;
  }

  ll.DrawSection = DrawSection;
  ll.verdict = verdict;
})();
