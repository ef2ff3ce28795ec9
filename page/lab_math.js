// The mathematics of the "train it yourself" lab, in plain JavaScript: the same AE and VAE as
// Models/latentlab/models.py (MLPs, ReLU between layers; the VAE's encoder ends in the means then
// the log-variances), the same loss as Models/latentlab/losses.py (the Bernoulli NLL on logits summed
// over the 784 pixels, plus β times the closed-form KL to N(0, I) of Kingma & Welling, 2013,
// Appendix B; batch means), the reparameterisation z = μ + σ·ε, backpropagation written out layer
// by layer, and Adam (Kingma & Ba, 2015) with torch.optim.Adam's defaults and update rule.
// tests/test_lab.py checks the loss, every gradient and ten Adam steps against torch.
//
// This file is one function, so that the page can run it twice: here (window.latentlab.lab.step)
// and as the source of each Web Worker that trains (page/lab.js makes a Blob of it).
function latentlabLabMath() {
  "use strict";

  // ---------------------------------------------------------------- random numbers (seeded)

  // mulberry32: a small seeded generator of uniforms in [0, 1); the same seed gives the same run.
  function rng(seed) {
    let a = seed >>> 0;
    const uniform = () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const normal = () => {  // Box-Muller
      let u = 0;
      while (u === 0) u = uniform();
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
    };
    return {uniform, normal};
  }

  // ---------------------------------------------------------------- one Linear layer

  // y = x Wᵀ + b, as torch.nn.Linear. The weight is kept transposed (in × out, row i holds what
  // input i adds to every output), so that the forward pass skips inputs that are 0 (most pixels,
  // and every unit a ReLU switched off) and each inner loop runs along one contiguous row.
  class Linear {
    constructor(nIn, nOut) {
      this.nIn = nIn; this.nOut = nOut;
      this.wt = new Float32Array(nIn * nOut); this.b = new Float32Array(nOut);
      this.gwt = new Float32Array(nIn * nOut); this.gb = new Float32Array(nOut);
      this.macs = 0;  // multiply-adds done so far (page_speed.py reports them)
    }

    // torch's default initialisation: weight and bias uniform in ±1/√in.
    init(random) {
      const bound = 1 / Math.sqrt(this.nIn);
      for (let i = 0; i < this.wt.length; i++) this.wt[i] = (2 * random.uniform() - 1) * bound;
      for (let o = 0; o < this.nOut; o++) this.b[o] = (2 * random.uniform() - 1) * bound;
    }

    // y (B × out) from x (B × in). Inputs go four at a time, so that each y[o] is loaded and stored
    // once per four multiply-adds: in plain JS that store, not the arithmetic, sets the pace.
    forward(x, y, batch) {
      const {nIn, nOut, wt, b} = this, on = this.on || (this.on = new Int32Array(nIn));
      let macs = 0;
      for (let s = 0; s < batch; s++) {
        const xs = s * nIn, ys = s * nOut;
        let m = 0;
        for (let i = 0; i < nIn; i++) if (x[xs + i] !== 0) on[m++] = i;
        for (let o = 0; o < nOut; o++) y[ys + o] = b[o];
        let k = 0;
        for (; k + 4 <= m; k += 4) {
          const i0 = on[k], i1 = on[k + 1], i2 = on[k + 2], i3 = on[k + 3];
          const v0 = x[xs + i0], v1 = x[xs + i1], v2 = x[xs + i2], v3 = x[xs + i3];
          const r0 = i0 * nOut, r1 = i1 * nOut, r2 = i2 * nOut, r3 = i3 * nOut;
          for (let o = 0; o < nOut; o++) y[ys + o] += v0 * wt[r0 + o] + v1 * wt[r1 + o] + v2 * wt[r2 + o] + v3 * wt[r3 + o];
        }
        for (; k < m; k++) {
          const v = x[xs + on[k]], r = on[k] * nOut;
          for (let o = 0; o < nOut; o++) y[ys + o] += v * wt[r + o];
        }
        macs += m * nOut;
      }
      this.macs += macs;
    }

    // Adds ∂L/∂W and ∂L/∂b for the upstream gradient gy (B × out) into gwt and gb, and writes ∂L/∂x
    // into gx unless gx is null (the first layer). Where x is 0 its weight row gets nothing from that
    // sample; if x came out of a ReLU (afterRelu), ∂L/∂x is 0 there too, since the ReLU was off. So
    // for each input i only the samples where it is on are visited, four at a time (one load and
    // store of gwt for four of them), each sample's ∂L/∂x[i] summed in a register.
    backward(x, gy, gx, batch, afterRelu) {
      const {nIn, nOut, wt, gwt, gb} = this, on = this.onSamples || (this.onSamples = new Int32Array(batch));
      let macs = 0;
      for (let s = 0; s < batch; s++) for (let o = 0; o < nOut; o++) gb[o] += gy[s * nOut + o];
      if (gx) gx.fill(0, 0, batch * nIn);
      for (let i = 0; i < nIn; i++) {
        let m = 0;
        for (let s = 0; s < batch; s++) if (x[s * nIn + i] !== 0 || (gx && !afterRelu)) on[m++] = s;
        const row = i * nOut;
        let k = 0;
        for (; k + 4 <= m; k += 4) {
          const s0 = on[k], s1 = on[k + 1], s2 = on[k + 2], s3 = on[k + 3];
          const v0 = x[s0 * nIn + i], v1 = x[s1 * nIn + i], v2 = x[s2 * nIn + i], v3 = x[s3 * nIn + i];
          const g0 = s0 * nOut, g1 = s1 * nOut, g2 = s2 * nOut, g3 = s3 * nOut;
          if (!gx) {
            for (let o = 0; o < nOut; o++) gwt[row + o] += v0 * gy[g0 + o] + v1 * gy[g1 + o] + v2 * gy[g2 + o] + v3 * gy[g3 + o];
            continue;
          }
          let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
          for (let o = 0; o < nOut; o++) {
            const w = wt[row + o], y0 = gy[g0 + o], y1 = gy[g1 + o], y2 = gy[g2 + o], y3 = gy[g3 + o];
            gwt[row + o] += v0 * y0 + v1 * y1 + v2 * y2 + v3 * y3;
            a0 += w * y0; a1 += w * y1; a2 += w * y2; a3 += w * y3;
          }
          gx[s0 * nIn + i] = a0; gx[s1 * nIn + i] = a1; gx[s2 * nIn + i] = a2; gx[s3 * nIn + i] = a3;
        }
        for (; k < m; k++) {
          const s = on[k], v = x[s * nIn + i], g = s * nOut;
          let acc = 0;
          for (let o = 0; o < nOut; o++) { gwt[row + o] += v * gy[g + o]; acc += wt[row + o] * gy[g + o]; }
          if (gx) gx[s * nIn + i] = acc;
        }
        macs += (gx ? 2 : 1) * m * nOut;
      }
      this.macs += macs;
    }
  }

  // A stack of Linear layers with a ReLU after each but the last, as nn.Sequential(Linear, ReLU,
  // ..., Linear). widths e.g. [784, 128, 32, 2]; acts[0] is the input, acts[l + 1] what layer l
  // gives (after its ReLU); grads[l] is ∂L/∂acts[l] (before the ReLU that made it).
  class MLP {
    constructor(widths, batch) {
      this.layers = widths.slice(1).map((n, l) => new Linear(widths[l], n));
      this.acts = widths.map((n) => new Float32Array(batch * n));
      this.grads = widths.map((n) => new Float32Array(batch * n));
    }

    get output() { return this.acts[this.acts.length - 1]; }

    forward(batch) {
      const last = this.layers.length - 1;
      this.layers.forEach((layer, l) => {
        const y = this.acts[l + 1];
        layer.forward(this.acts[l], y, batch);
        if (l < last) for (let i = 0, n = batch * layer.nOut; i < n; i++) if (y[i] < 0) y[i] = 0;
      });
      return this.output;
    }

    // From grads[last] (∂L/∂output) down to grads[0] if wantInput, else to the first layer's weights.
    backward(batch, wantInput) {
      for (let l = this.layers.length - 1; l >= 0; l--) {
        const gx = l > 0 || wantInput ? this.grads[l] : null;
        this.layers[l].backward(this.acts[l], this.grads[l + 1], gx, batch, l > 0);
      }
    }
  }

  // ---------------------------------------------------------------- the AE and the VAE

  // sizes: the encoder's widths, input first, latent last (e.g. [784, 128, 32, 2]); the decoder
  // mirrors them. kind "ae" or "vae" (whose encoder gives 2 × latent outputs).
  class Model {
    constructor(kind, sizes, batch) {
      const d = sizes[sizes.length - 1];
      this.kind = kind; this.sizes = sizes; this.latent = d; this.batch = batch;
      this.encoder = new MLP([...sizes.slice(0, -1), kind === "vae" ? 2 * d : d], batch);
      this.decoder = new MLP([...sizes].reverse(), batch);
      this.layers = [...this.encoder.layers, ...this.decoder.layers];
      this.x = this.encoder.acts[0];              // the batch goes here (B × 784 in [0, 1])
      this.eps = new Float32Array(batch * d);     // and the VAE's noise here (B × latent)
    }

    get macs() { return this.layers.reduce((n, layer) => n + layer.macs, 0); }

    init(seed, meanImage) {
      const random = rng(seed);
      this.layers.forEach((layer) => { layer.init(random); layer.macs = 0; });
      // Start the decoder at the mean training image (the logits of its pixels), as training.init_output_bias.
      if (meanImage) {
        const bias = this.decoder.layers[this.decoder.layers.length - 1].b;
        for (let i = 0; i < bias.length; i++) {
          const p = Math.min(1 - 1e-3, Math.max(1e-3, meanImage[i]));
          bias[i] = Math.log(p / (1 - p));
        }
      }
    }

    // The codes of this.x: the AE's code, or the VAE's posterior means then log-variances (B × 2d).
    encode(batch) { return this.encoder.forward(batch); }

    // The forward and backward pass of the batch-mean loss rec + β·KL on this.x (and this.eps):
    // leaves the gradients in every layer's gwt and gb, returns the batch means {loss, rec, kl}.
    lossAndGrads(batch, beta) {
      const d = this.latent, vae = this.kind === "vae", h = this.encode(batch), z = this.decoder.acts[0];
      let kl = 0;
      for (let s = 0; s < batch; s++) for (let j = 0; j < d; j++) {
        if (!vae) { z[s * d + j] = h[s * d + j]; continue; }
        // the reparameterisation trick: z = μ + σ·ε, σ = exp(½ log σ²)
        const mu = h[s * 2 * d + j], logvar = h[s * 2 * d + d + j];
        z[s * d + j] = mu + Math.exp(0.5 * logvar) * this.eps[s * d + j];
        kl += 0.5 * (mu * mu + Math.exp(logvar) - 1 - logvar);
      }
      const logits = this.decoder.forward(batch), x = this.x, gl = this.decoder.grads[this.decoder.layers.length];
      // Bernoulli NLL on logits summed over pixels, max(l, 0) − l·x + log(1 + e^−|l|), whose gradient
      // in the logit is sigmoid(l) − x; the loss is a batch mean, so every gradient carries 1/B.
      let rec = 0;
      for (let i = 0, n = batch * this.sizes[0]; i < n; i++) {
        const l = logits[i], e = Math.exp(-Math.abs(l));
        rec += Math.max(l, 0) - l * x[i] + Math.log1p(e);
        gl[i] = ((l >= 0 ? 1 / (1 + e) : e / (1 + e)) - x[i]) / batch;
      }
      for (const layer of this.layers) { layer.gwt.fill(0); layer.gb.fill(0); }
      this.decoder.backward(batch, true);
      const gz = this.decoder.grads[0], gh = this.encoder.grads[this.encoder.layers.length];
      for (let s = 0; s < batch; s++) for (let j = 0; j < d; j++) {
        if (!vae) { gh[s * d + j] = gz[s * d + j]; continue; }
        const mu = h[s * 2 * d + j], sigma = Math.exp(0.5 * h[s * 2 * d + d + j]), g = gz[s * d + j];
        gh[s * 2 * d + j] = g + beta * mu / batch;  // ∂/∂μ of the decoder's term and of β·KL
        gh[s * 2 * d + d + j] = 0.5 * sigma * (g * this.eps[s * d + j] + beta * sigma / batch) - 0.5 * beta / batch;  // ∂/∂log σ²
      }
      this.encoder.backward(batch, false);
      rec /= batch; kl /= batch;
      return {loss: rec + beta * kl, rec, kl};
    }

    // The parameters by torch's state_dict names: nn.Sequential(Linear, ReLU, Linear, ...) holds the
    // Linears at 0, 2, 4, ...; weights are out × in, row-major (flat arrays).
    named() {
      return [...this.encoder.layers.map((layer, l) => [`encoder.${2 * l}`, layer]),
              ...this.decoder.layers.map((layer, l) => [`decoder.${2 * l}`, layer])];
    }

    // {name: flat Array} of the parameters (which = "params") or of their gradients ("grads").
    state(which) {
      const out = {};
      for (const [name, layer] of this.named()) {
        const wt = which === "grads" ? layer.gwt : layer.wt, w = new Array(layer.nIn * layer.nOut);
        for (let i = 0; i < layer.nIn; i++) for (let o = 0; o < layer.nOut; o++) w[o * layer.nIn + i] = wt[i * layer.nOut + o];
        out[`${name}.weight`] = w;
        out[`${name}.bias`] = Array.from(which === "grads" ? layer.gb : layer.b);
      }
      return out;
    }

    // Sets the parameters from {name: (nested or flat) Array} as state() gives them.
    load(params) {
      for (const [name, layer] of this.named()) {
        const w = params[`${name}.weight`].flat(), b = params[`${name}.bias`];
        if (w.length !== layer.nIn * layer.nOut || b.length !== layer.nOut) throw new Error(`${name}: wrong shape`);
        for (let i = 0; i < layer.nIn; i++) for (let o = 0; o < layer.nOut; o++) layer.wt[i * layer.nOut + o] = w[o * layer.nIn + i];
        layer.b.set(b);
      }
    }
  }

  // ---------------------------------------------------------------- Adam

  // torch.optim.Adam with its defaults (β₁ = 0.9, β₂ = 0.999, ε = 1e-8, no weight decay):
  // m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; p ← p − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε).
  class Adam {
    constructor(model, lr) {
      this.lr = lr; this.t = 0;
      this.slots = model.layers.flatMap((layer) => [[layer.wt, layer.gwt], [layer.b, layer.gb]])
        .map(([p, g]) => ({p, g, m: new Float32Array(p.length), v: new Float32Array(p.length)}));
    }

    step() {
      const b1 = 0.9, b2 = 0.999, eps = 1e-8;
      this.t += 1;
      const stepSize = this.lr / (1 - b1 ** this.t), c2 = Math.sqrt(1 - b2 ** this.t);
      for (const {p, g, m, v} of this.slots) {
        for (let i = 0; i < p.length; i++) {
          const gi = g[i];
          m[i] = b1 * m[i] + (1 - b1) * gi;
          v[i] = b2 * v[i] + (1 - b2) * gi * gi;
          p[i] -= stepSize * m[i] / (Math.sqrt(v[i]) / c2 + eps);
        }
      }
    }
  }

  return {rng, Linear, MLP, Model, Adam};
}
