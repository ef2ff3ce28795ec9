// The decoder in the browser: the same MLP as Models/latentlab/models.py (Linear, ReLU, ...,
// Linear, then a sigmoid on the pixel logits), with the float16 weights that
// Models/latentlab/page.py exports, computed in plain JavaScript. Also the few bits of maths the
// explorers share: base64 arrays, Gaussian-mixture samples and spherical interpolation.
(function () {
  "use strict";
  const ll = (window.latentlab = window.latentlab || {});

  // ------------------------------------------------------------------ arrays from base64

  function bytes(b64) {
    const text = atob(b64);
    const out = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
    return out;
  }

  // float16 -> float32 for all 65,536 bit patterns, made once.
  const HALF = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
    HALF[h] = exp === 0 ? sign * frac * 2 ** -24
      : exp === 31 ? (frac ? NaN : sign * Infinity)
      : sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }

  function float16(b64) {
    const raw = bytes(b64), out = new Float32Array(raw.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = HALF[raw[2 * i] | (raw[2 * i + 1] << 8)];
    return out;
  }

  function float32(b64) {
    const raw = bytes(b64), view = new DataView(raw.buffer), out = new Float32Array(raw.length / 4);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
    return out;
  }

  // ------------------------------------------------------------------ the decoder MLP

  class Decoder {
    constructor(spec) {
      this.sizes = spec.sizes;                      // e.g. [2, 256, 512, 784]
      this.weights = spec.weights.map(float16);     // out x in, row-major
      this.biases = spec.biases.map(float16);
      this.buffers = this.sizes.slice(1).map((n) => new Float32Array(n));
    }

    get latentDim() { return this.sizes[0]; }

    // 784 pixel intensities in [0, 1] for the code z; the returned array is reused by the next call.
    decode(z) {
      let h = z;
      const last = this.weights.length - 1;
      for (let l = 0; l <= last; l++) {
        const nIn = this.sizes[l], nOut = this.sizes[l + 1];
        const W = this.weights[l], b = this.biases[l], out = this.buffers[l];
        for (let o = 0; o < nOut; o++) {
          let acc = b[o];
          const row = o * nIn;
          for (let i = 0; i < nIn; i++) acc += W[row + i] * h[i];
          out[o] = l < last ? (acc > 0 ? acc : 0) : 1 / (1 + Math.exp(-acc));
        }
        h = out;
      }
      return h;
    }
  }

  // ------------------------------------------------------------------ sampling and paths

  function gaussian() {  // Box-Muller
    let u = 0;
    while (u === 0) u = Math.random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * Math.random());
  }

  // A draw from a Gaussian mixture given as weights, means (k x d) and Cholesky factors (k x d x d).
  function sampleMixture(mix, dim) {
    let r = Math.random(), k = 0;
    while (k < mix.weights.length - 1 && r >= mix.weights[k]) r -= mix.weights[k++];
    const eps = Array.from({length: dim}, gaussian), z = new Float32Array(dim);
    for (let i = 0; i < dim; i++) {
      let acc = mix.means[k * dim + i];
      for (let j = 0; j <= i; j++) acc += mix.chol[(k * dim + i) * dim + j] * eps[j];
      z[i] = acc;
    }
    return z;
  }

  function norm(a) { return Math.sqrt(a.reduce((s, v) => s + v * v, 0)); }

  // Linear interpolation for the AE; spherical (Shoemake, 1985; White, 2016) for the VAE, whose
  // prior puts little mass near the origin: the same rule as the latent_walk.gif of each model.
  function interpolate(a, b, t, spherical) {
    const out = new Float32Array(a.length);
    let wa = 1 - t, wb = t;
    if (spherical) {
      let dot = 0;
      for (let i = 0; i < a.length; i++) dot += a[i] * b[i];
      const omega = Math.acos(Math.max(-1, Math.min(1, dot / (norm(a) * norm(b)))));
      if (omega > 1e-6) {
        wa = Math.sin((1 - t) * omega) / Math.sin(omega);
        wb = Math.sin(t * omega) / Math.sin(omega);
      }
    }
    for (let i = 0; i < a.length; i++) out[i] = wa * a[i] + wb * b[i];
    return out;
  }

  // Paint 784 intensities into a 28x28 canvas as dark ink on white, like the repo's figures.
  function paintDigit(canvas, pixels) {
    const ctx = canvas.getContext("2d"), img = ctx.createImageData(28, 28);
    for (let i = 0; i < 784; i++) {
      const v = Math.round(255 * (1 - Math.min(1, Math.max(0, pixels[i]))));
      img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = v;
      img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }

  ll.nn = {bytes, float16, float32, Decoder, gaussian, sampleMixture, interpolate, paintDigit};
})();
