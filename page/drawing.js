// The drawing pad and how a drawing becomes an MNIST digit. The pad keeps a fixed 280x280 raster
// whatever its size on screen; mnistStyle() is tests/mnist_style.py line for line (the
// tests compare the two): the ink's bounding box scaled to fit 20x20 keeping its aspect ratio,
// area-averaged, and placed so that its centre of mass sits at the centre of the 28x28 field, as
// MNIST's digits were made (LeCun et al., 1998).
(function () {
  "use strict";
  const ll = (window.latentlab = window.latentlab || {});
  const FIELD = 28, BOX = 20, SIZE = 280, STROKE = 20;

  // (FIELD x nSrc) area-coverage matrix, row-major: see preprocess.coverage
  function coverage(nSrc, lo, scale, offset) {
    const a = new Float64Array(FIELD * nSrc);
    for (let t = 0; t < FIELD; t++) {
      const start = (t - offset) / scale + lo, end = (t + 1 - offset) / scale + lo;
      for (let s = Math.max(0, Math.floor(start)); s < Math.min(nSrc, Math.ceil(end)); s++) {
        const overlap = Math.min(s + 1, end) - Math.max(s, start);
        if (overlap > 0) a[t * nSrc + s] = overlap * scale;
      }
    }
    return a;
  }

  // ink: row-major h x w intensities in [0, 1]; returns 784 intensities, or null without ink.
  function mnistStyle(ink, w, h, threshold = 0) {
    let y0 = h, y1 = -1, x0 = w, x1 = -1, mass = 0, my = 0, mx = 0;
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      const v = ink[y * w + x];
      if (v > threshold) {
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
      }
      mass += v; my += v * (y + 0.5); mx += v * (x + 0.5);
    }
    if (y1 < 0) return null;
    y1 += 1; x1 += 1;
    const scale = BOX / Math.max(y1 - y0, x1 - x0), half = FIELD / 2;
    const ay = coverage(h, y0, scale, half - (my / mass - y0) * scale);
    const ax = coverage(w, x0, scale, half - (mx / mass - x0) * scale);
    const rows = new Float64Array(FIELD * w);  // ay @ ink
    for (let t = 0; t < FIELD; t++) for (let s = 0; s < h; s++) {
      const a = ay[t * h + s];
      if (a === 0) continue;
      for (let x = x0; x < x1; x++) rows[t * w + x] += a * ink[s * w + x];
    }
    const out = new Float32Array(FIELD * FIELD);
    for (let t = 0; t < FIELD; t++) for (let u = 0; u < FIELD; u++) {
      let acc = 0;
      for (let x = x0; x < x1; x++) acc += rows[t * w + x] * ax[u * w + x];
      out[t * FIELD + u] = Math.min(1, Math.max(0, acc));
    }
    return out;
  }

  // A square canvas to draw on with mouse, pen or touch; calls onChange() after every stroke segment
  // (at most once per animation frame) and after clear().
  class Pad {
    constructor(canvas, onChange) {
      this.canvas = canvas;
      canvas.width = canvas.height = SIZE;
      this.ctx = canvas.getContext("2d", {willReadFrequently: true});
      this.onChange = onChange;
      this.last = null;
      this.empty = true;
      this.listen();
    }

    point(e) {
      const r = this.canvas.getBoundingClientRect();
      return [(e.clientX - r.left) * SIZE / r.width, (e.clientY - r.top) * SIZE / r.height];
    }

    stroke(to) {
      const ctx = this.ctx, from = this.last || to;
      ctx.strokeStyle = "#000";
      ctx.lineWidth = STROKE;
      ctx.lineCap = ctx.lineJoin = "round";
      ctx.beginPath();
      ctx.moveTo(from[0], from[1]);
      ctx.lineTo(to[0] + (from === to ? 0.01 : 0), to[1]);
      ctx.stroke();
      this.last = to;
      this.empty = false;
      this.changed();
    }

    changed() {
      if (this.pending) return;
      this.pending = true;
      requestAnimationFrame(() => { this.pending = false; this.onChange(); });
    }

    listen() {
      const c = this.canvas;
      c.addEventListener("pointerdown", (e) => {
        c.setPointerCapture(e.pointerId);
        this.last = null;
        this.drawing = true;
        this.stroke(this.point(e));
        e.preventDefault();
      });
      c.addEventListener("pointermove", (e) => {
        if (!this.drawing) return;
        const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
        for (const ev of events.length ? events : [e]) this.stroke(this.point(ev));
      });
      const end = () => { this.drawing = false; this.last = null; };
      c.addEventListener("pointerup", end);
      c.addEventListener("pointercancel", end);
    }

    clear() {
      this.ctx.clearRect(0, 0, SIZE, SIZE);
      this.empty = true;
      this.changed();
    }

    // The raster's ink (alpha) as SIZE x SIZE values in [0, 1].
    ink() {
      const rgba = this.ctx.getImageData(0, 0, SIZE, SIZE).data, out = new Float32Array(SIZE * SIZE);
      for (let i = 0; i < out.length; i++) out[i] = rgba[4 * i + 3] / 255;
      return out;
    }

    // The drawing as an MNIST digit (784 values), or null when the pad is empty.
    digit() { return this.empty ? null : mnistStyle(this.ink(), SIZE, SIZE); }
  }

  ll.drawing = {Pad, mnistStyle, SIZE};
})();
