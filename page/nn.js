// The networks in the browser, in plain JavaScript, with the float16 weights that
// Models/latentlab/page_export.py exports: the encoders and decoders (the same MLPs as
// Models/latentlab/models.py: Linear, ReLU, ..., Linear; the decoder adds a sigmoid, the VAE's
// encoder output is split into mean and log-variance) and the LeNet judge. Also the few bits of
// maths the explorers share: base64 arrays, Gaussian-mixture samples and spherical interpolation.
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

  // The bytes of a base64 string of zlib-deflated data, inflated by the browser itself.
  async function inflate(b64) {
    const stream = new Blob([bytes(b64)]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  // page_export.py's ``packed``: float16 values, every high byte then every low byte, deflated; returns
  // one Float32Array per shape.
  async function unpack(spec) {
    const raw = await inflate(spec.data), n = raw.length / 2, out = [];
    let at = 0;
    for (const shape of spec.shapes) {
      const size = shape.reduce((a, b) => a * b, 1), arr = new Float32Array(size);
      for (let i = 0; i < size; i++) arr[i] = HALF[(raw[at + i] << 8) | raw[n + at + i]];
      out.push(arr);
      at += size;
    }
    return out;
  }

  // ------------------------------------------------------------------ the MLPs

  class MLP {
    // sizes e.g. [784, 512, 256, 64]; arrays: weight (out x in, row-major), bias, weight, bias, ...;
    // slope: what the activation between layers multiplies negative values by (0: ReLU; LeakyReLU's slope)
    constructor(sizes, arrays, slope = 0) {
      this.sizes = sizes;
      this.slope = slope;
      this.weights = arrays.filter((_, i) => i % 2 === 0);
      this.biases = arrays.filter((_, i) => i % 2 === 1);
      this.buffers = sizes.slice(1).map((n) => new Float32Array(n));
      // The first layer also as in x out: an image is mostly zeros, and its nonzero pixels then
      // each add one contiguous row (5x fewer multiplications for an MNIST digit).
      const [nIn, nOut] = sizes, W = this.weights[0];
      this.firstT = new Float32Array(nIn * nOut);
      for (let o = 0; o < nOut; o++) for (let i = 0; i < nIn; i++) this.firstT[i * nOut + o] = W[o * nIn + i];
    }

    // The last layer's pre-activations for x; the returned array is reused by the next call.
    forward(x) {
      const last = this.weights.length - 1, nOut0 = this.sizes[1], first = this.buffers[0];
      first.set(this.biases[0]);
      for (let i = 0; i < this.sizes[0]; i++) {
        const v = x[i];
        if (v === 0) continue;
        const row = i * nOut0;
        for (let o = 0; o < nOut0; o++) first[o] += this.firstT[row + o] * v;
      }
      const s = this.slope;
      if (last > 0) for (let o = 0; o < nOut0; o++) if (first[o] < 0) first[o] *= s;
      let h = first;
      for (let l = 1; l <= last; l++) {
        const nIn = this.sizes[l], nOut = this.sizes[l + 1];
        const W = this.weights[l], b = this.biases[l], out = this.buffers[l];
        for (let o = 0; o < nOut; o++) {
          let acc = b[o];
          const row = o * nIn;
          for (let i = 0; i < nIn; i++) acc += W[row + i] * h[i];
          out[o] = l < last && acc < 0 ? acc * s : acc;
        }
        h = out;
      }
      return h;
    }
  }

  class Decoder extends MLP {
    get latentDim() { return this.sizes[0]; }

    // 784 pixel intensities in [0, 1] for the code z; the returned array is reused by the next call.
    decode(z) {
      const logits = this.forward(z), out = this.pixels || (this.pixels = new Float32Array(logits.length));
      for (let i = 0; i < logits.length; i++) out[i] = 1 / (1 + Math.exp(-logits[i]));
      return out;
    }
  }

  class Encoder extends MLP {
    constructor(sizes, arrays, variational, slope = 0) {
      super(sizes, arrays, slope);
      this.variational = variational;
    }

    // {mean, logvar} of 784 intensities in [0, 1]; logvar is null for an AE (its code is the mean).
    encode(x) {
      const out = this.forward(x);
      if (!this.variational) return {mean: Float32Array.from(out), logvar: null};
      const d = out.length / 2;
      return {mean: out.slice(0, d), logvar: out.slice(d)};
    }
  }

  // ------------------------------------------------------------------ the LeNet judge

  // Models/latentlab/models.py's LeNet: conv 5x5 (pad 2) -> max-pool 2 -> ReLU -> conv 5x5 ->
  // max-pool 2 -> ReLU -> 120 -> ReLU -> 84 -> ReLU -> 10, softmax at the end.
  class LeNet {
    constructor(names, arrays) {
      const p = Object.fromEntries(names.map((n, i) => [n, arrays[i]]));
      this.c1w = p["conv.0.weight"]; this.c1b = p["conv.0.bias"];
      this.c2w = p["conv.3.weight"]; this.c2b = p["conv.3.bias"];
      this.fc = [[p["conv.7.weight"], p["conv.7.bias"], 1250, 120], [p["conv.9.weight"], p["conv.9.bias"], 120, 84],
                 [p["head.weight"], p["head.bias"], 84, 10]];
      this.pad = new Float32Array(32 * 32);
      this.a1 = new Float32Array(20 * 14 * 14);   // after conv1, pool, ReLU
      this.a2 = new Float32Array(50 * 5 * 5);     // after conv2, pool, ReLU (torch's flatten order)
      this.row = new Float32Array(20 * 10 * 10);  // conv2 outputs before pooling
    }

    // 10 class probabilities of 784 intensities in [0, 1].
    classify(x) {
      const pad = this.pad;
      for (let y = 0; y < 28; y++) for (let xx = 0; xx < 28; xx++) pad[(y + 2) * 32 + xx + 2] = x[y * 28 + xx];
      this.conv1(pad);
      this.conv2();
      let h = this.a2;
      this.fc.forEach(([W, b, nIn, nOut], l) => {
        const out = new Float32Array(nOut);
        for (let o = 0; o < nOut; o++) {
          let acc = b[o];
          for (let i = 0, row = o * nIn; i < nIn; i++) acc += W[row + i] * h[i];
          out[o] = l < 2 && acc < 0 ? 0 : acc;
        }
        h = out;
      });
      const top = Math.max(...h), e = Array.from(h, (v) => Math.exp(v - top)), sum = e.reduce((a, b) => a + b);
      return e.map((v) => v / sum);
    }

    conv1(pad) {  // 1 -> 20 channels, 28x28 (padded input 32x32), then 2x2 max-pool and ReLU
      const conv = new Float32Array(28 * 28);
      for (let c = 0; c < 20; c++) {
        const w = this.c1w.subarray(c * 25, c * 25 + 25);
        for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) {
          let acc = this.c1b[c];
          for (let ky = 0; ky < 5; ky++) {
            const r = (y + ky) * 32 + x, k = ky * 5;
            acc += w[k] * pad[r] + w[k + 1] * pad[r + 1] + w[k + 2] * pad[r + 2] + w[k + 3] * pad[r + 3] + w[k + 4] * pad[r + 4];
          }
          conv[y * 28 + x] = acc;
        }
        pool(conv, 28, this.a1, c * 196);
      }
    }

    conv2() {  // 20 -> 50 channels, 10x10, then 2x2 max-pool and ReLU
      const a1 = this.a1, out = new Float32Array(100);
      for (let c = 0; c < 50; c++) {
        out.fill(this.c2b[c]);
        for (let ci = 0; ci < 20; ci++) {
          const w = this.c2w.subarray((c * 20 + ci) * 25, (c * 20 + ci) * 25 + 25), src = ci * 196;
          for (let ky = 0; ky < 5; ky++) for (let kx = 0; kx < 5; kx++) {
            const wk = w[ky * 5 + kx];
            for (let y = 0; y < 10; y++) {
              const r = src + (y + ky) * 14 + kx, o = y * 10;
              for (let x = 0; x < 10; x++) out[o + x] += wk * a1[r + x];
            }
          }
        }
        pool(out, 10, this.a2, c * 25);
      }
    }
  }

  // 2x2 max-pool of an n x n map, then ReLU, into out[at ...]
  function pool(map, n, out, at) {
    const m = n / 2;
    for (let y = 0; y < m; y++) for (let x = 0; x < m; x++) {
      const r = 2 * y * n + 2 * x;
      const v = Math.max(map[r], map[r + 1], map[r + n], map[r + n + 1]);
      out[at + y * m + x] = v > 0 ? v : 0;
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

  ll.nn = {bytes, float16, float32, inflate, unpack, Decoder, Encoder, LeNet, gaussian, sampleMixture,
           interpolate, paintDigit};
})();
