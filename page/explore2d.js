// The 2-D explorer: the test codes of one model as a scatter coloured by digit, a marker the user
// drags (mouse, touch or arrow keys), and the digit the decoder makes at the marker, live, with the
// LeNet's verdict. The wheel, the +/− keys or buttons zoom (an AE's codes span very different
// scales), ⟲ returns to the start. A drawing (draw.js) shows as a point (AE) or as the posterior's
// mean with its 1σ and 2σ ellipses (VAE); hovering or tapping a test point links it to the other
// 2-D panel (onLink). The VAE's panel can compute the true posterior p(z|x) of the drawing (or of the
// linked test digit) on a grid (posterior.js) and draw it under q's ellipses, with −log p(x) and −ELBO.
(function () {
  "use strict";
  const ll = (window.latentlab = window.latentlab || {});
  // matplotlib's tab10, the palette of every figure in the repo (Models/latentlab/style.py)
  const DIGIT_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                        "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const MARGIN = {left: 36, right: 10, top: 10, bottom: 28};

  function median(values) {
    const sorted = Float32Array.from(values).sort();
    return sorted[sorted.length >> 1];
  }

  function niceStep(span) {
    const raw = span / 5, mag = 10 ** Math.floor(Math.log10(raw));
    return [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  }

  class Explorer2D {
    constructor(root, data, decoder, lenet, poolLabels, onLink, exact = null) {
      this.data = data;
      this.exact = exact;  // {encoder, source(): {pixels, what} or null}, for the true posterior
      this.decoder = decoder;
      this.lenet = lenet;
      this.onLink = onLink;
      this.home = data.scatter.view;                 // [[x0, x1], [y0, y1]]
      this.view = this.home;
      this.codes = ll.nn.float16(data.scatter.codes);  // the shared pool's test digits, in its order
      this.labels = poolLabels;
      this.drawn = null;
      this.linked = null;
      // start where the codes are densest: the prior's centre, or the AE codes' median
      this.z = data.variational ? [0, 0] : [0, 1].map((a) => median(this.codes.filter((_, i) => i % 2 === a)));
      root.innerHTML = `
        <h3>${data.label}</h3>
        <div class="explore2d">
          <div class="planebox">
            <canvas class="plane" id="explore-${data.key}-plane" tabindex="0"
                    aria-label="${data.label}: kéo điểm đỏ / drag the red marker"></canvas>
            <div class="zoom">
              <button type="button" data-zoom="0.6" title="phóng to / zoom in">+</button>
              <button type="button" data-zoom="1.6667" title="thu nhỏ / zoom out">−</button>
              <button type="button" data-zoom="home" title="về khung ban đầu / reset the view">⟲</button>
            </div>
          </div>
          <div class="readout">
            <canvas class="digit" id="explore-${data.key}-digit" width="28" height="28"></canvas>
            <div class="verdict" id="explore-${data.key}-verdict"></div>
            <div class="coords" id="explore-${data.key}-coords"></div>
            ${exact ? `<button type="button" class="truepost" id="explore-${data.key}-true">
              <span class="vi">Hậu nghiệm thật</span><span class="en">True posterior</span></button>
              <progress id="explore-${data.key}-progress" max="1" value="0" hidden></progress>
              <div class="exactline" id="explore-${data.key}-exact"></div>` : ""}
          </div>
        </div>`;
      this.plane = root.querySelector(".plane");
      this.digit = root.querySelector(".digit");
      this.coords = root.querySelector(".coords");
      this.verdictBox = root.querySelector(".verdict");
      if (exact) {
        this.trueButton = root.querySelector(".truepost");
        this.progress = root.querySelector("progress");
        this.exactLine = root.querySelector(".exactline");
        this.trueButton.addEventListener("click", () => this.computeTrue());
      }
      this.listen();
      this.resize();
      new ResizeObserver(() => this.resize()).observe(this.plane);
    }

    // data coordinates <-> canvas pixels (CSS px)
    toPx([x, y]) {
      const [[x0, x1], [y0, y1]] = this.view, w = this.width, h = this.height;
      return [MARGIN.left + (x - x0) / (x1 - x0) * (w - MARGIN.left - MARGIN.right),
              MARGIN.top + (y1 - y) / (y1 - y0) * (h - MARGIN.top - MARGIN.bottom)];
    }

    fromPx([px, py]) {
      const [[x0, x1], [y0, y1]] = this.view, w = this.width, h = this.height;
      const x = x0 + (px - MARGIN.left) / (w - MARGIN.left - MARGIN.right) * (x1 - x0);
      const y = y1 - (py - MARGIN.top) / (h - MARGIN.top - MARGIN.bottom) * (y1 - y0);
      return [Math.min(x1, Math.max(x0, x)), Math.min(y1, Math.max(y0, y))];
    }

    resize() {
      const css = this.plane.clientWidth;
      if (!css || css === this.width) return;
      const dpr = window.devicePixelRatio || 1;
      this.width = this.height = css;
      this.plane.height = this.plane.width = Math.round(css * dpr);
      this.dpr = dpr;
      this.background = this.drawBackground();
      this.update();
    }

    // The static layer (axes, prior circles, test codes), drawn once per size.
    drawBackground() {
      const layer = document.createElement("canvas");
      layer.width = this.plane.width;
      layer.height = this.plane.height;
      const ctx = layer.getContext("2d");
      ctx.scale(this.dpr, this.dpr);
      ctx.fillStyle = "#fff";
      ctx.fillRect(0, 0, this.width, this.height);
      const [[x0, x1], [y0, y1]] = this.view;
      ctx.font = "11px system-ui, sans-serif";
      ctx.fillStyle = "#666";
      ctx.strokeStyle = "#eceff3";
      ctx.lineWidth = 1;
      for (const [lo, hi, axis] of [[x0, x1, 0], [y0, y1, 1]]) {
        const step = niceStep(hi - lo);
        for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) {
          const [px, py] = this.toPx(axis === 0 ? [v, y0] : [x0, v]);
          const label = Math.abs(v) < 1e-9 ? "0" : +v.toFixed(2) + "";
          ctx.beginPath();
          if (axis === 0) {
            ctx.moveTo(px, MARGIN.top); ctx.lineTo(px, this.height - MARGIN.bottom);
            ctx.textAlign = "center"; ctx.fillText(label, px, this.height - MARGIN.bottom + 14);
          } else {
            ctx.moveTo(MARGIN.left, py); ctx.lineTo(this.width - MARGIN.right, py);
            ctx.textAlign = "right"; ctx.fillText(label, MARGIN.left - 5, py + 4);
          }
          ctx.stroke();
        }
      }
      ctx.textAlign = "center";
      ctx.fillText("z₁", this.width - MARGIN.right - 8, this.height - 4);
      ctx.save();
      ctx.translate(10, MARGIN.top + 8);
      ctx.fillText("z₂", 0, 0);
      ctx.restore();
      ctx.save();
      ctx.beginPath();
      ctx.rect(MARGIN.left, MARGIN.top, this.width - MARGIN.left - MARGIN.right,
               this.height - MARGIN.top - MARGIN.bottom);
      ctx.clip();
      ctx.globalAlpha = 0.55;
      for (let i = 0; i < this.labels.length; i++) {
        const [px, py] = this.toPx([this.codes[2 * i], this.codes[2 * i + 1]]);
        ctx.fillStyle = DIGIT_COLORS[this.labels[i]];
        ctx.fillRect(px - 1.3, py - 1.3, 2.6, 2.6);
      }
      ctx.globalAlpha = 1;
      if (this.data.variational) {  // the prior's 1σ, 2σ and 3σ circles
        const [cx, cy] = this.toPx([0, 0]), unit = this.toPx([1, 0])[0] - cx;
        ctx.setLineDash([4, 4]);
        ctx.strokeStyle = "#555";
        ctx.fillStyle = "#444";
        for (const r of [1, 2, 3]) {
          ctx.beginPath();
          ctx.arc(cx, cy, r * unit, 0, 2 * Math.PI);
          ctx.stroke();
          ctx.fillText(`${r}σ`, cx + r * unit * 0.71 + 8, cy - r * unit * 0.71);
        }
        ctx.setLineDash([]);
      }
      ctx.restore();
      return layer;
    }

    // The true posterior's log density (12 nats deep) as a translucent heat map over its window.
    drawPosterior(ctx) {
      const w = this.posterior.window, n = w.n, layer = document.createElement("canvas");
      layer.width = layer.height = n;
      const lctx = layer.getContext("2d"), img = lctx.createImageData(n, n);
      const top = Math.max(...w.logDensity);
      for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) {
        const t = Math.max(0, 1 + (w.logDensity[r * n + c] - top) / 12), o = 4 * ((n - 1 - r) * n + c);
        img.data[o] = 120 + 135 * t; img.data[o + 1] = 20 + 60 * t; img.data[o + 2] = 120 - 80 * t;
        img.data[o + 3] = Math.round(230 * t);
      }
      lctx.putImageData(img, 0, 0);
      const h = (n - 1) / 2 * w.step + w.step / 2;
      const [x0, y0] = this.toPx([w.c1 - h, w.c2 + h]), [x1, y1] = this.toPx([w.c1 + h, w.c2 - h]);
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(layer, x0, y0, Math.max(2, x1 - x0), Math.max(2, y1 - y0));
    }

    // q(z|x) as its mean (a cross) and, for a VAE, its 1σ and 2σ ellipses.
    drawCode(ctx, code) {
      const m = code.mean, [cx, cy] = this.toPx([m[0], m[1]]);
      ctx.strokeStyle = "#111";
      ctx.lineWidth = 2;
      if (code.logvar) {
        const [ux] = this.toPx([m[0] + 1, m[1]]), [, uy] = this.toPx([m[0], m[1] + 1]);
        const sx = Math.exp(0.5 * code.logvar[0]), sy = Math.exp(0.5 * code.logvar[1]);
        for (const k of [1, 2]) {
          ctx.beginPath();
          ctx.setLineDash(k === 2 ? [5, 4] : []);
          ctx.ellipse(cx, cy, Math.max(1, k * sx * (ux - cx)), Math.max(1, k * sy * (cy - uy)), 0, 0, 2 * Math.PI);
          ctx.fillStyle = k === 1 ? "rgba(0,0,0,0.10)" : "rgba(0,0,0,0.04)";
          ctx.fill();
          ctx.stroke();
        }
        ctx.setLineDash([]);
      }
      ctx.beginPath();
      ctx.moveTo(cx - 7, cy - 7); ctx.lineTo(cx + 7, cy + 7);
      ctx.moveTo(cx - 7, cy + 7); ctx.lineTo(cx + 7, cy - 7);
      ctx.lineWidth = 3;
      ctx.stroke();
    }

    // The linked test point's ring, the true posterior, the drawing's code.
    drawOverlay(ctx) {
      if (this.linked !== null) {
        const [lx, ly] = this.toPx([this.codes[2 * this.linked], this.codes[2 * this.linked + 1]]);
        ctx.beginPath();
        ctx.arc(lx, ly, 6, 0, 2 * Math.PI);
        ctx.lineWidth = 2.5;
        ctx.strokeStyle = "#111";
        ctx.stroke();
      }
      if (this.posterior) {
        this.drawPosterior(ctx);
        this.drawCode(ctx, this.posterior.q);
      }
      if (this.drawn) this.drawCode(ctx, this.drawn);
    }

    // The true posterior of the drawing, or else of the linked test digit, computed in slices.
    async computeTrue() {
      const src = this.exact.source(), line = this.exactLine, bar = this.progress;
      if (!src) {
        line.innerHTML = `<span class="vi">Hãy vẽ một chữ số hoặc chọn một chấm trước.</span>` +
                         `<span class="en">Draw a digit or pick a dot first.</span>`;
        return null;
      }
      this.trueButton.disabled = true;
      bar.hidden = false;
      const began = performance.now();
      const r = await ll.truePosterior(this.decoder, this.exact.encoder, src.pixels, (f) => { bar.value = f; });
      bar.hidden = true;
      this.trueButton.disabled = false;
      this.posterior = r;
      r.source = src.source;
      const f = (v) => v.toFixed(2), secs = ((performance.now() - began) / 1000).toFixed(1);
      line.innerHTML = `${src.what}: −log p(x) = <b>${f(r.negLogPx)}</b> nats, −ELBO = ${f(r.negElbo)}, ` +
        `<span class="vi">khoảng cách</span><span class="en">gap</span> ${f(r.negElbo - r.negLogPx)} (${secs} s)`;
      this.moveTo(r.mode);
      return r;
    }

    // A drawing's code (from draw.js) with its reconstruction and the LeNet's probabilities, or null.
    showDrawn(code, image, probs) {
      this.drawn = code;
      if (this.posterior && this.posterior.source === "drawing") this.posterior = null;  // stale now
      if (code) {
        const [[x0, x1], [y0, y1]] = this.view, [a, b] = code.mean;
        if (a < x0 || a > x1 || b < y0 || b > y1) {  // widen the view to show it
          const pad = (lo, hi, v) => [Math.min(lo, v - 0.1 * (hi - lo)), Math.max(hi, v + 0.1 * (hi - lo))];
          this.view = [pad(x0, x1, a), pad(y0, y1, b)];
          this.background = this.drawBackground();
        }
        this.z = [a, b];
        this.update(image, probs);
      } else {
        this.update();
      }
    }

    setLinked(i) {
      this.linked = i;
      this.update(this.lastImage, this.lastProbs);
    }

    update(image, probs) {
      if (!this.background) return;
      const ctx = this.plane.getContext("2d");
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.drawImage(this.background, 0, 0);
      ctx.scale(this.dpr, this.dpr);
      const [px, py] = this.toPx(this.z);
      ctx.beginPath();
      ctx.arc(px, py, 8, 0, 2 * Math.PI);
      ctx.fillStyle = "rgba(255,255,255,0.85)";
      ctx.fill();
      ctx.lineWidth = 2.5;
      ctx.strokeStyle = "#dc141e";
      ctx.stroke();
      ctx.beginPath();
      ctx.arc(px, py, 2.5, 0, 2 * Math.PI);
      ctx.fillStyle = "#dc141e";
      ctx.fill();
      this.drawOverlay(ctx);
      // the caller may pass the image at z and its verdict when it has them (a drawing's update)
      image = image || this.decoder.decode(Float32Array.from(this.z));
      probs = probs || this.lenet.classify(image);
      this.lastImage = image;
      this.lastProbs = probs;
      ll.nn.paintDigit(this.digit, image);
      this.verdictBox.innerHTML = ll.verdict(probs);
      this.coords.textContent = `z = (${this.z[0].toFixed(2)}, ${this.z[1].toFixed(2)})`;
    }

    // Scale the view by ``factor`` about the data point ``centre`` (which stays where it is on screen).
    zoom(factor, centre) {
      if (factor === "home") {
        this.view = this.home;
      } else {
        this.view = this.view.map(([lo, hi], a) => [centre[a] - (centre[a] - lo) * factor,
                                                   centre[a] + (hi - centre[a]) * factor]);
      }
      this.background = this.drawBackground();
      this.update();
    }

    moveTo(z) {
      const [[x0, x1], [y0, y1]] = this.view;
      this.z = [Math.min(x1, Math.max(x0, z[0])), Math.min(y1, Math.max(y0, z[1]))];
      this.update();
    }

    // Link the test point within ``radius`` CSS px of the pointer, if any, nearest first.
    hover(e, radius) {
      const r = this.plane.getBoundingClientRect(), x = e.clientX - r.left, y = e.clientY - r.top;
      let best = -1, bestD = radius * radius;
      for (let i = 0; i < this.labels.length; i++) {
        const [px, py] = this.toPx([this.codes[2 * i], this.codes[2 * i + 1]]);
        const d = (px - x) ** 2 + (py - y) ** 2;
        if (d < bestD) { bestD = d; best = i; }
      }
      if (best >= 0 && best !== this.linked) this.onLink(best);
      return best;
    }

    listen() {
      const at = (e) => {
        const r = this.plane.getBoundingClientRect();
        return this.fromPx([e.clientX - r.left, e.clientY - r.top]);
      };
      this.plane.addEventListener("pointerdown", (e) => {
        this.plane.setPointerCapture(e.pointerId);
        this.dragging = true;
        // a tap links the test point under the finger; if the pointer does not move, it goes to the fit-q panel
        this.tapped = {index: this.hover(e, 12), x: e.clientX, y: e.clientY};
        this.moveTo(at(e));
        e.preventDefault();
      });
      this.plane.addEventListener("pointermove", (e) => {
        if (this.dragging) this.moveTo(at(e));
        else this.hover(e, 6);
      });
      const stop = () => { this.dragging = false; };
      this.plane.addEventListener("pointerup", (e) => {
        const t = this.tapped;
        if (t && t.index >= 0 && this.onPick && Math.hypot(e.clientX - t.x, e.clientY - t.y) < 6) this.onPick(t.index);
        stop();
      });
      this.plane.addEventListener("pointercancel", stop);
      this.plane.addEventListener("wheel", (e) => {
        this.zoom(Math.exp(e.deltaY * 0.0015), at(e));
        e.preventDefault();
      }, {passive: false});
      this.plane.parentElement.querySelectorAll("[data-zoom]").forEach((b) => b.addEventListener("click", () => {
        this.zoom(b.dataset.zoom === "home" ? "home" : +b.dataset.zoom, this.z);
      }));
      this.plane.addEventListener("keydown", (e) => {
        if (e.key === "+" || e.key === "-") {
          this.zoom(e.key === "+" ? 0.6 : 1 / 0.6, this.z);
          e.preventDefault();
          return;
        }
        const keys = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1]};
        if (!keys[e.key]) return;
        const [[x0, x1], [y0, y1]] = this.view, f = e.shiftKey ? 0.1 : 0.02;
        this.moveTo([this.z[0] + keys[e.key][0] * f * (x1 - x0), this.z[1] + keys[e.key][1] * f * (y1 - y0)]);
        e.preventDefault();
      });
    }
  }

  ll.DIGIT_COLORS = DIGIT_COLORS;
  ll.Explorer2D = Explorer2D;
})();
