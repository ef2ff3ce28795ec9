// Per-image variational inference in the page: the same mathematics as Models/latentlab/inference.py.
// For one digit x and the 2-D VAE's frozen decoder, q(z) is moved to maximise that digit's ELBO,
//   ELBO(q) = E_q[log p(x|z) + log p(z) − log q(z)] ≤ log p(x),
// by Adam (Kingma & Ba, 2015; torch.optim.Adam's rule) on a 4-draw estimate whose gradient flows
// through the decoder by the reparameterisation trick (Kingma & Welling, 2013), the learning rate
// decayed to 0 on a cosine (torch's CosineAnnealingLR), starting from the encoder's q.
//
// As in inference.py, q is written in the coordinates of the q it starts from: z = c + s ⊙ v, with
// c, s the encoder's mean and standard deviations (fixed) and v = m + L ε, ε ~ N(0, I), L lower-
// triangular with diagonal exp(logvar / 2). "diagonal" keeps L diagonal (the encoder's family);
// "full" also moves L's lower entries (any correlation). Every number is a float64 (the weights are
// the page's float16 values): tests/test_fitq.py checks the gradients against torch's.
(function () {
  "use strict";
  const ll = (window.latentlab = window.latentlab || {});
  const LOG_2PI = Math.log(2 * Math.PI);
  // Gauss-Hermite nodes and weights (7 points a dimension): the deterministic ELBO of a Gaussian q
  const GH_T = [-2.651961356835233, -1.673551628767471, -0.816287882858965, 0, 0.816287882858965,
                1.673551628767471, 2.651961356835233];
  const GH_W = [0.000971781245099519, 0.054515582819127, 0.425607252610128, 0.810264617556807,
                0.425607252610128, 0.054515582819127, 0.000971781245099519];
  // What inference.py's fit runs: Adam steps, draws a step, first learning rate
  const STEPS = 300, SAMPLES = 4, LR = 0.2;

  function softplus(l) { return l > 0 ? l + Math.log1p(Math.exp(-l)) : Math.log1p(Math.exp(l)); }

  // ---------------------------------------------------------------- log p(x|z) + log p(z) and its gradient in z

  // The decoder of page/nn.js (Linear, ReLU or LeakyReLU, ..., Linear to 784 logits) run forward in
  // float64, then backward to its input: ∂/∂z of the Bernoulli log-likelihood plus the prior's log density.
  class Joint {
    constructor(decoder, x) {
      this.d = decoder;
      this.x = x;
      this.h = decoder.sizes.map((n) => new Float64Array(n));  // every layer's output (h[0] = z)
      this.g = decoder.sizes.map((n) => new Float64Array(n));  // ∂/∂ of each layer's output
      this.decodes = 0;
    }

    // log p(x|z) + log p(z); with grad (a Float64Array of z's length), adds its gradient into grad.
    logJoint(z, grad = null) {
      const {d, h, g, x} = this, last = d.weights.length - 1, s = d.slope;
      h[0].set(z);
      for (let l = 0; l <= last; l++) {
        const nIn = d.sizes[l], nOut = d.sizes[l + 1], W = d.weights[l], b = d.biases[l];
        const a = h[l], out = h[l + 1];
        for (let o = 0; o < nOut; o++) {
          let acc = b[o];
          for (let i = 0, row = o * nIn; i < nIn; i++) acc += W[row + i] * a[i];
          out[o] = l < last && acc < 0 ? acc * s : acc;
        }
      }
      this.decodes += 1;
      const logits = h[last + 1];
      let value = 0;
      for (let i = 0; i < logits.length; i++) value += x[i] * logits[i] - softplus(logits[i]);
      for (let j = 0; j < z.length; j++) value -= 0.5 * (z[j] * z[j] + LOG_2PI);
      if (!grad) return value;
      const top = g[last + 1];
      for (let i = 0; i < logits.length; i++) top[i] = x[i] - 1 / (1 + Math.exp(-logits[i]));  // ∂/∂ logits
      for (let l = last; l >= 0; l--) {  // through layer l: g[l] = Wᵀ (g[l+1] ⊙ activation')
        const nIn = d.sizes[l], nOut = d.sizes[l + 1], W = d.weights[l], up = g[l + 1], down = g[l];
        if (l < last) for (let o = 0; o < nOut; o++) if (h[l + 1][o] <= 0) up[o] *= s;  // the activation's slope: 0 or s
        down.fill(0);
        for (let o = 0; o < nOut; o++) {
          const go = up[o];
          if (go === 0) continue;
          for (let i = 0, row = o * nIn; i < nIn; i++) down[i] += W[row + i] * go;
        }
      }
      for (let j = 0; j < z.length; j++) grad[j] += g[0][j] - z[j];
      return value;
    }
  }

  // ---------------------------------------------------------------- the family q

  // θ = [m (d), logvar (d), lower (d × d, row-major; "full" uses the entries below the diagonal)],
  // all 0 at the start: q is then the encoder's q.
  class Q {
    constructor(family, mean, logvar) {
      this.family = family;
      this.dim = mean.length;
      this.c = Float64Array.from(mean);
      this.s = Float64Array.from(logvar, (v) => Math.exp(0.5 * v));
      this.theta = new Float64Array(2 * this.dim + this.dim * this.dim);
    }

    // z = c + s ⊙ (m + L ε) for the standard normal draw eps
    z(eps) {
      const d = this.dim, t = this.theta, out = new Float64Array(d);
      for (let i = 0; i < d; i++) {
        let v = t[i] + Math.exp(0.5 * t[d + i]) * eps[i];
        if (this.family === "full") for (let j = 0; j < i; j++) v += t[2 * d + i * d + j] * eps[j];
        out[i] = this.c[i] + this.s[i] * v;
      }
      return out;
    }

    // H(q) = −E_q[log q(z)], in closed form: log |det ∂z/∂ε| = Σ log s + Σ logvar / 2
    entropy() {
      let h = 0.5 * this.dim * (1 + LOG_2PI);
      for (let i = 0; i < this.dim; i++) h += Math.log(this.s[i]) + 0.5 * this.theta[this.dim + i];
      return h;
    }

    // z's mean and covariance diag(s) L Lᵀ diag(s) (2 × 2 here), for the ellipses
    meanCov() {
      const d = this.dim, t = this.theta, L = [];
      for (let i = 0; i < d; i++) {
        L.push(Array.from({length: d}, (_, j) => j === i ? Math.exp(0.5 * t[d + i])
          : j < i && this.family === "full" ? t[2 * d + i * d + j] : 0));
      }
      const cov = L.map((row, i) => L.map((other, j) =>
        this.s[i] * this.s[j] * row.reduce((acc, v, k) => acc + v * other[k], 0)));
      return {mean: Array.from(this.c, (c, i) => c + this.s[i] * t[i]), cov};
    }
  }

  // The ELBO's estimate from the draws epsList (each a standard normal d-vector) and its gradient in θ
  // (added into grad): the mean over draws of log p(x|z) + log p(z) − log q(z), z = q.z(ε).
  function elboAndGradient(joint, q, epsList, grad) {
    const d = q.dim, t = q.theta, gz = new Float64Array(d);
    let total = 0;
    for (const eps of epsList) {
      const z = q.z(eps);
      gz.fill(0);
      let logQ = 0;
      for (let i = 0; i < d; i++) logQ -= 0.5 * (eps[i] * eps[i] + LOG_2PI) + Math.log(q.s[i]) + 0.5 * t[d + i];
      total += joint.logJoint(z, gz) - logQ;
      for (let i = 0; i < d; i++) {  // the chain rule through z = c + s ⊙ (m + L ε)
        const gv = q.s[i] * gz[i] / epsList.length;
        grad[i] += gv;                                                  // ∂/∂m_i
        grad[d + i] += gv * 0.5 * Math.exp(0.5 * t[d + i]) * eps[i];    // ∂/∂logvar_i, through L_ii
        if (q.family === "full") for (let j = 0; j < i; j++) grad[2 * d + i * d + j] += gv * eps[j];
      }
    }
    for (let i = 0; i < d; i++) grad[d + i] += 0.5;  // −log q(z) holds +logvar_i / 2 (the entropy's term)
    return total / epsList.length;
  }

  // The deterministic ELBO: E_q[log p(x|z) + log p(z)] by 7 × 7 Gauss-Hermite points, plus H(q).
  function elbo(joint, q) {
    let e = 0;
    for (let a = 0; a < 7; a++) for (let b = 0; b < 7; b++) {
      e += GH_W[a] * GH_W[b] / Math.PI * joint.logJoint(q.z([Math.SQRT2 * GH_T[a], Math.SQRT2 * GH_T[b]]));
    }
    return e + q.entropy();
  }

  // ---------------------------------------------------------------- Adam on θ, the learning rate on a cosine

  // torch.optim.Adam (β₁ = 0.9, β₂ = 0.999, ε = 1e-8) minimising −ELBO, with torch's CosineAnnealingLR over
  // ``steps``: step k (from 0) uses lr·(1 + cos(πk/steps))/2.
  class Fit {
    constructor(decoder, x, encoded, family, {steps = STEPS, samples = SAMPLES, lr = LR, seed = 0} = {}) {
      this.joint = new Joint(decoder, x);
      this.q = new Q(family, encoded.mean, encoded.logvar);
      this.steps = steps; this.samples = samples; this.lr = lr;
      this.random = latentlabLabMath().rng(seed);  // page/lab_math.js's seeded generator: the same seed, the same fit
      this.k = 0;
      this.m = new Float64Array(this.q.theta.length);
      this.v = new Float64Array(this.q.theta.length);
      this.trace = [];  // the 4-draw estimate Adam saw at each step
    }

    get done() { return this.k >= this.steps; }

    step() {
      const d = this.q.dim, eps = Array.from({length: this.samples},
        () => Float64Array.from({length: d}, () => this.random.normal()));
      const grad = new Float64Array(this.q.theta.length);
      this.trace.push(elboAndGradient(this.joint, this.q, eps, grad));
      const b1 = 0.9, b2 = 0.999, t = this.k + 1, theta = this.q.theta;
      const lr = this.lr * (1 + Math.cos(Math.PI * this.k / this.steps)) / 2;
      const stepSize = lr / (1 - b1 ** t), c2 = Math.sqrt(1 - b2 ** t);
      for (let i = 0; i < theta.length; i++) {
        const g = -grad[i];  // Adam descends −ELBO
        this.m[i] = b1 * this.m[i] + (1 - b1) * g;
        this.v[i] = b2 * this.v[i] + (1 - b2) * g * g;
        theta[i] -= stepSize * this.m[i] / (Math.sqrt(this.v[i]) / c2 + 1e-8);
      }
      this.k += 1;
    }

    elbo() { return elbo(this.joint, this.q); }
  }

  ll.vi = {STEPS, SAMPLES, LR, Joint, Q, Fit, elbo, elboAndGradient};
})();
