// "Fit q": per-image variational inference, live, on the 2-D VAE (page/vi.js does the mathematics).
// For one digit (the drawing, a test digit tapped on the 2-D plane, or another one at random) the
// panel computes the true posterior p(z|x) and log p(x) (page/posterior.js) once the section is in
// view; "Fit q" then moves q from the encoder's q by Adam, a few steps every animation frame so the
// page stays responsive: q's 1σ and 2σ ellipses move over the posterior's contours, its ELBO (7 × 7
// Gauss-Hermite, every 10 steps) climbs towards log p(x), and the two gaps of Cremer et al. (2018)
// are read off as it goes. The diagonal family is the encoder's own; the full-covariance one can
// tilt, so what is left shrinks.
(function () {
  "use strict";
  const ll = (window.latentlab = window.latentlab || {});
  const COLORS = {encoder: "#495057", diagonal: "#1c7ed6", full: "#e8590c", exact: "#c2255c"};
  const NAMES = {diagonal: ["Gauss chéo (họ của encoder)", "diagonal Gaussian (the encoder's family)"],
                 full: ["Gauss đầy đủ (có tương quan)", "full-covariance Gaussian"]};
  const EVERY = 10;       // the deterministic ELBO every EVERY steps
  const SLICE_MS = 12;    // the work of one animation frame
  const FIRST_DIGIT = 1185;

  const both = ll.gallery.both;  // page/gallery.js: a Vietnamese and an English span
  const frame = () => new Promise((resolve) => requestAnimationFrame(() => resolve()));

  // A canvas sized to its CSS box times the device's pixel ratio; returns its 2-D context in CSS px.
  function sized(canvas) {
    const dpr = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return {ctx, w, h};
  }

  class FitPanel {
    constructor(root, decoder, encoder, pool) {
      Object.assign(this, {decoder, encoder, pool});
      this.family = "diagonal";
      root.innerHTML = `
        <div class="fitq">
          <div class="fitview">
            <canvas class="fitplane" id="fit-plane" aria-label="p(z|x) and q(z)"></canvas>
            <div class="fitlegend">
              <span><i style="background:${COLORS.exact}"></i>${both("hậu nghiệm thật p(z|x), đường mức cách 2 nats", "true posterior p(z|x), contours 2 nats apart")}</span>
              <span><i style="background:${COLORS.encoder}"></i>${both("q của encoder", "the encoder's q")}</span>
              <span><i style="background:${COLORS.diagonal}"></i>${both("q chéo đang khớp", "diagonal q being fitted")}</span>
              <span><i style="background:${COLORS.full}"></i>${both("q đầy đủ đang khớp", "full q being fitted")}</span>
            </div>
          </div>
          <div class="fitside">
            <div class="fitsource">
              <canvas class="digit small" id="fit-digit" width="28" height="28"></canvas>
              <div><div id="fit-what"></div>
                <button type="button" id="fit-another">${both("Chữ số khác", "Another digit")}</button></div>
            </div>
            <div class="pickmode fitfamily">
              <button type="button" class="mode on" data-family="diagonal">${both("Gauss chéo", "Diagonal")}</button>
              <button type="button" class="mode" data-family="full">${both("Gauss đầy đủ", "Full covariance")}</button>
            </div>
            <div class="buttons fitbuttons">
              <button type="button" id="fit-run">▶ ${both("Khớp q", "Fit q")}</button>
              <button type="button" id="fit-pause" disabled>‖ ${both("Dừng", "Pause")}</button>
              <button type="button" id="fit-reset">⟲ ${both("Về q của encoder", "Back to the encoder's q")}</button>
            </div>
            <div class="status" id="fit-step"></div>
            <progress id="fit-progress" max="1" value="0" hidden></progress>
            <canvas class="fitchart" id="fit-chart" aria-label="ELBO by step"></canvas>
            <table class="fitnumbers" id="fit-numbers"></table>
          </div>
        </div>`;
      this.plane = root.querySelector("#fit-plane");
      this.chart = root.querySelector("#fit-chart");
      this.stepLine = root.querySelector("#fit-step");
      this.numbers = root.querySelector("#fit-numbers");
      this.progress = root.querySelector("#fit-progress");
      this.runButton = root.querySelector("#fit-run");
      this.pauseButton = root.querySelector("#fit-pause");
      this.familyButtons = root.querySelectorAll("[data-family]");
      this.runButton.addEventListener("click", () => this.run());
      this.pauseButton.addEventListener("click", () => { this.paused = true; });
      root.querySelector("#fit-reset").addEventListener("click", () => this.reset());
      root.querySelector("#fit-another").addEventListener("click", () => this.another());
      this.familyButtons.forEach((b) => b.addEventListener("click", () => this.choose(b.dataset.family)));
      new ResizeObserver(() => this.draw()).observe(this.plane);
      // the true posterior is computed (in slices) once the section is in view, so that "Fit q" starts at once
      new IntersectionObserver(([entry]) => {
        this.visible = entry.isIntersecting;
        if (this.visible) this.exact();
      }).observe(root);
      // the first digit shown: test image #1185, an 8 whose encoder q sits off its tilted posterior, so both gaps show
      this.setTest(Math.max(0, pool.index.indexOf(FIRST_DIGIT)));
    }

    // ---------------------------------------------------------------- which digit

    setTest(i) {
      this.set({pixels: this.pool.pixels(i), what: both(`Ảnh test #${this.pool.index[i]}`, `Test image #${this.pool.index[i]}`)});
    }

    setDrawing(pixels) {
      if (pixels) this.set({pixels: Float32Array.from(pixels), what: both("Hình bạn vẽ", "Your drawing")});
    }

    another() { this.setTest(Math.floor(Math.random() * this.pool.labels.length)); }

    // A new digit: the encoder's q at once; its true posterior soon if the section is in view; the fits on "Fit q".
    set(source) {
      this.source = source;
      this.paused = true;  // a fit running on the old digit stops at its next frame
      this.posterior = null;
      this.pending = null;
      this.encoded = this.encoder.encode(source.pixels);
      this.fits = {};
      this.view = null;
      ll.nn.paintDigit(document.getElementById("fit-digit"), source.pixels);
      document.getElementById("fit-what").innerHTML = source.what;
      this.reportStep();
      this.draw();
      clearTimeout(this.soon);  // a drawing changes with every stroke: wait until it rests
      if (this.visible) this.soon = setTimeout(() => this.exact(), 400);
    }

    choose(family) {
      this.family = family;
      this.familyButtons.forEach((b) => b.classList.toggle("on", b.dataset.family === family));
      this.reportStep();
      this.draw();
    }

    // ---------------------------------------------------------------- the fit

    // The true posterior once per digit: log p(x) and the contours (about 3 s)
    async exact() {
      if (!this.pending) {
        const source = this.source;
        this.progress.hidden = false;
        this.pending = ll.truePosterior(this.decoder, this.encoder, source.pixels, (f) => { this.progress.value = f; })
          .then((r) => {
            if (this.source !== source) return null;
            this.progress.hidden = true;
            this.posterior = r;
            this.encoderElbo = -r.negElbo;  // vi.elbo of the encoder's q: the same rule as the fits' curves
            this.view = this.frameView();
            this.draw();
            return r;
          });
      }
      return this.pending;
    }

    async run() {
      if (this.running) return;
      const source = this.source, family = this.family;
      this.running = true;
      this.paused = false;
      this.runButton.disabled = true;
      this.pauseButton.disabled = false;
      this.familyButtons.forEach((b) => { b.disabled = true; });
      try {
        if (!(await this.exact()) || this.source !== source) return;
        await frame();  // the contours are drawn in this frame, the fit starts in the next
        let fit = this.fits[family];
        if (!fit || fit.done) {
          fit = new ll.vi.Fit(this.decoder, source.pixels, this.encoded, family);
          fit.curve = [[0, fit.elbo()]];
          fit.seconds = 0;
          this.fits[family] = fit;
        }
        while (!fit.done && !this.paused && this.source === source) {
          const began = performance.now();
          while (!fit.done && performance.now() - began < SLICE_MS) {
            fit.step();
            if (fit.k % EVERY === 0 || fit.done) fit.curve.push([fit.k, fit.elbo()]);
          }
          fit.seconds += (performance.now() - began) / 1000;
          this.reportStep();
          this.draw();
          await frame();
        }
      } finally {
        this.running = false;
        this.runButton.disabled = false;
        this.pauseButton.disabled = true;
        this.familyButtons.forEach((b) => { b.disabled = false; });
        this.reportStep();
      }
    }

    reset() {
      this.paused = true;
      delete this.fits[this.family];
      this.reportStep();
      this.draw();
    }

    // ---------------------------------------------------------------- numbers

    reportStep() {
      const fit = this.fits && this.fits[this.family], k = fit ? fit.k : 0, steps = ll.vi.STEPS;
      const secs = fit ? ` · ${fit.seconds.toFixed(1)} s` : "";
      this.stepLine.innerHTML = both(`Bước K = ${k} / ${steps}`, `Step K = ${k} / ${steps}`) + secs +
        (fit && fit.done ? both(" · xong", " · done") : "");
      this.table();
    }

    table() {
      const p = this.posterior, f = (v) => v.toFixed(2);
      if (!p) {
        this.numbers.innerHTML = `<tr><td>${both("Bấm “Khớp q”: trang tính hậu nghiệm thật và log p(x) trước (vài giây).",
          "Press “Fit q”: the page first computes the true posterior and log p(x) (a few seconds).")}</td></tr>`;
        return;
      }
      const logPx = -p.negLogPx, rows = [
        [both("log p(x), chính xác trên lưới", "log p(x), exact on a grid"), f(logPx), ""],
        [both("ELBO của q encoder", "ELBO of the encoder's q"), f(this.encoderElbo), ""]];
      for (const family of ["diagonal", "full"]) {
        const fit = this.fits[family];
        if (!fit) continue;
        const e = fit.curve[fit.curve.length - 1][1], gained = e - this.encoderElbo, left = logPx - e;
        const name = both(NAMES[family][0], NAMES[family][1]);
        rows.push([`ELBO, ${name}, K = ${fit.curve[fit.curve.length - 1][0]}`, f(e),
          family === "diagonal"
            ? both(`khấu hao (đã lấy lại) ${f(gained)} · xấp xỉ (còn lại) ${f(left)}`,
                   `amortization (gained) ${f(gained)} · approximation (left) ${f(left)}`)
            : both(`hơn q encoder ${f(gained)} · còn lại ${f(left)}`,
                   `over the encoder's q ${f(gained)} · left ${f(left)}`)]);
      }
      this.numbers.innerHTML = `<tr><th></th><th>nats</th><th>${both("khoảng cách", "gaps")}</th></tr>` +
        rows.map(([a, b, c]) => `<tr><td>${a}</td><td class="num">${b}</td><td>${c}</td></tr>`).join("");
    }

    // ---------------------------------------------------------------- pictures

    // A square view holding the shaded posterior (12 nats deep) and the encoder's 2σ ellipse
    frameView() {
      const w = this.posterior.window, n = w.n, half = (n - 1) / 2, m = this.encoded.mean;
      const s = Array.from(this.encoded.logvar, (v) => Math.exp(0.5 * v)), top = Math.max(...w.logDensity);
      const lo = [m[0] - 2.2 * s[0], m[1] - 2.2 * s[1]], hi = [m[0] + 2.2 * s[0], m[1] + 2.2 * s[1]];
      w.logDensity.forEach((v, i) => {
        if (v < top - 12) return;
        const a = w.c1 + (i % n - half) * w.step, b = w.c2 + (Math.floor(i / n) - half) * w.step;
        lo[0] = Math.min(lo[0], a - w.step); hi[0] = Math.max(hi[0], a + w.step);
        lo[1] = Math.min(lo[1], b - w.step); hi[1] = Math.max(hi[1], b + w.step);
      });
      const r = 0.58 * Math.max(hi[0] - lo[0], hi[1] - lo[1]);
      return {c: [(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2], r};
    }

    draw() {
      this.drawPlane();
      this.drawChart();
    }

    drawPlane() {
      const {ctx, w} = sized(this.plane);
      ctx.fillStyle = "#fff";
      ctx.fillRect(0, 0, w, w);
      const v = this.view || {c: Array.from(this.encoded.mean), r: 3 * Math.exp(0.5 * Math.max(...this.encoded.logvar))};
      const toPx = ([a, b]) => [(a - v.c[0] + v.r) / (2 * v.r) * w, (v.c[1] + v.r - b) / (2 * v.r) * w];
      if (this.posterior) this.drawContours(ctx, w, v);
      ctx.font = "11px system-ui, sans-serif";
      ctx.fillStyle = "#666";
      ctx.fillText(`z₁ ∈ [${(v.c[0] - v.r).toFixed(2)}, ${(v.c[0] + v.r).toFixed(2)}]`, 6, w - 8);
      ctx.fillText(`z₂ ∈ [${(v.c[1] - v.r).toFixed(2)}, ${(v.c[1] + v.r).toFixed(2)}]`, 6, 14);
      const enc = {mean: Array.from(this.encoded.mean), cov: [[Math.exp(this.encoded.logvar[0]), 0], [0, Math.exp(this.encoded.logvar[1])]]};
      this.ellipses(ctx, toPx, enc, COLORS.encoder, [5, 4]);
      for (const family of ["diagonal", "full"]) {
        const fit = this.fits[family];
        if (fit) this.ellipses(ctx, toPx, fit.q.meanCov(), COLORS[family], [], family === this.family ? 1 : 0.45);
      }
      if (this.posterior) {  // the true posterior's mode
        const [mx, my] = toPx(this.posterior.mode);
        ctx.strokeStyle = COLORS.exact;
        ctx.lineWidth = 2;
        ctx.beginPath();
        ctx.moveTo(mx - 5, my - 5); ctx.lineTo(mx + 5, my + 5); ctx.moveTo(mx - 5, my + 5); ctx.lineTo(mx + 5, my - 5);
        ctx.stroke();
      }
    }

    // log p(z|x) over its window, interpolated per pixel: shaded down to 12 nats below its top, a contour every 2;
    // drawn once per digit and size, then copied every frame
    drawContours(ctx, w, v) {
      const size = Math.round(w);
      if (!this.layer || this.layer.posterior !== this.posterior || this.layer.size !== size || this.layer.view !== v) {
        this.layer = {posterior: this.posterior, size, view: v, canvas: this.contourLayer(size, v)};
      }
      ctx.drawImage(this.layer.canvas, 0, 0, w, w);
    }

    contourLayer(size, v) {
      const p = this.posterior.window, n = p.n, half = (n - 1) / 2;
      const top = Math.max(...p.logDensity), img = new ImageData(size, size);
      const level = new Float64Array(size * size).fill(NaN);
      for (let py = 0; py < size; py++) for (let px = 0; px < size; px++) {
        const a = v.c[0] - v.r + (px + 0.5) / size * 2 * v.r, b = v.c[1] + v.r - (py + 0.5) / size * 2 * v.r;
        const gc = (a - p.c1) / p.step + half, gr = (b - p.c2) / p.step + half;
        if (gc < 0 || gr < 0 || gc > n - 1 || gr > n - 1) continue;
        const c0 = Math.min(n - 2, Math.floor(gc)), r0 = Math.min(n - 2, Math.floor(gr)), fc = gc - c0, fr = gr - r0;
        const at = (r, c) => p.logDensity[r * n + c];
        level[py * size + px] = (1 - fr) * ((1 - fc) * at(r0, c0) + fc * at(r0, c0 + 1)) +
                                fr * ((1 - fc) * at(r0 + 1, c0) + fc * at(r0 + 1, c0 + 1)) - top;
      }
      for (let i = 0; i < level.length; i++) {
        const t = Math.max(0, 1 + level[i] / 12), o = 4 * i;
        if (!(t > 0)) continue;
        const band = Math.floor(-level[i] / 2), right = level[i + 1], below = level[i + size];
        const edge = band < 6 && ((right === right && Math.floor(-right / 2) !== band) ||
                                  (below === below && Math.floor(-below / 2) !== band));
        img.data[o] = edge ? 194 : 255 - 40 * t; img.data[o + 1] = edge ? 37 : 255 - 175 * t;
        img.data[o + 2] = edge ? 92 : 255 - 120 * t; img.data[o + 3] = 255;
      }
      const layer = document.createElement("canvas");
      layer.width = layer.height = size;
      layer.getContext("2d").putImageData(img, 0, 0);
      return layer;
    }

    // 1σ and 2σ ellipses of a Gaussian {mean, cov} (2 × 2), and its mean
    ellipses(ctx, toPx, {mean, cov}, color, dash, alpha = 1) {
      const [[a, b], [, c]] = cov, mid = (a + c) / 2, rad = Math.sqrt(((a - c) / 2) ** 2 + b * b);
      const angle = 0.5 * Math.atan2(2 * b, a - c), [cx, cy] = toPx(mean), unit = toPx([mean[0] + 1, mean[1]])[0] - cx;
      ctx.save();
      ctx.globalAlpha = alpha;
      ctx.strokeStyle = color;
      ctx.lineWidth = 2;
      for (const k of [1, 2]) {
        ctx.setLineDash(k === 2 ? [6, 4] : dash);
        ctx.beginPath();
        // the canvas's y axis points down: a tilt of +angle in z is −angle on screen
        ctx.ellipse(cx, cy, Math.max(1, k * Math.sqrt(mid + rad) * unit), Math.max(1, k * Math.sqrt(Math.max(0, mid - rad)) * unit),
                    -angle, 0, 2 * Math.PI);
        ctx.stroke();
      }
      ctx.setLineDash([]);
      ctx.fillStyle = color;
      ctx.beginPath();
      ctx.arc(cx, cy, 3, 0, 2 * Math.PI);
      ctx.fill();
      ctx.restore();
    }

    // The ELBO by step: each family's Gauss-Hermite curve, the 4-draw estimate Adam saw (faint), log p(x) above
    drawChart() {
      const {ctx, w, h} = sized(this.chart), M = {l: 44, r: 8, t: 8, b: 22};
      ctx.fillStyle = "#fff";
      ctx.fillRect(0, 0, w, h);
      if (!this.posterior) return;
      const logPx = -this.posterior.negLogPx, fits = ["diagonal", "full"].filter((f) => this.fits[f]);
      let lo = this.encoderElbo;
      for (const f of fits) for (const [, e] of this.fits[f].curve) lo = Math.min(lo, e);
      lo -= 0.15 * (logPx - lo) + 0.2;
      const hi = logPx + 0.08 * (logPx - lo) + 0.1, steps = ll.vi.STEPS;
      const X = (k) => M.l + k / steps * (w - M.l - M.r), Y = (e) => M.t + (hi - e) / (hi - lo) * (h - M.t - M.b);
      ctx.font = "11px system-ui, sans-serif";
      ctx.fillStyle = "#666";
      ctx.textAlign = "right";
      for (const e of [lo, (lo + hi) / 2, hi]) ctx.fillText(e.toFixed(1), M.l - 4, Y(e) + 4);
      ctx.textAlign = "center";
      for (const k of [0, 100, 200, 300]) {
        ctx.textAlign = k === steps ? "right" : k ? "center" : "left";
        ctx.fillText(`${k}`, X(k), h - 6);
      }
      ctx.textAlign = "center";
      ctx.fillText("K", X(steps / 2), h - 6);
      ctx.save();
      ctx.beginPath();
      ctx.rect(M.l, M.t, w - M.l - M.r, h - M.t - M.b);
      ctx.clip();
      const hline = (e, color, dash) => {
        ctx.strokeStyle = color; ctx.setLineDash(dash); ctx.lineWidth = 1.5;
        ctx.beginPath(); ctx.moveTo(M.l, Y(e)); ctx.lineTo(w - M.r, Y(e)); ctx.stroke(); ctx.setLineDash([]);
      };
      hline(logPx, COLORS.exact, [6, 4]);
      hline(this.encoderElbo, COLORS.encoder, [2, 3]);
      for (const f of fits) {
        const fit = this.fits[f];
        if (f === this.family) {  // the noisy objective Adam climbs
          ctx.strokeStyle = COLORS[f]; ctx.globalAlpha = 0.25; ctx.lineWidth = 1;
          ctx.beginPath();
          fit.trace.forEach((e, k) => (k ? ctx.lineTo(X(k), Y(e)) : ctx.moveTo(X(k), Y(e))));
          ctx.stroke();
          ctx.globalAlpha = 1;
        }
        ctx.strokeStyle = COLORS[f]; ctx.lineWidth = 2.2;
        ctx.beginPath();
        fit.curve.forEach(([k, e], i) => (i ? ctx.lineTo(X(k), Y(e)) : ctx.moveTo(X(k), Y(e))));
        ctx.stroke();
      }
      ctx.restore();
      ctx.fillStyle = COLORS.exact;
      ctx.textAlign = "right";
      ctx.fillText("log p(x)", w - M.r - 2, Y(logPx) - 4);
    }
  }

  ll.FitPanel = FitPanel;
})();
