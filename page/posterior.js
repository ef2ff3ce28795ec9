// The true posterior p(z|x) of the 2-D VAE, computed in the page: log p(x|z) + log p(z) on grids
// of z, the same integrand as Models/latentlab/exact.py (tests compare the two). A browser decodes
// ~3,000 points a second, so instead of exact.py's fine grid over the whole plane it searches, then
// integrates locally: a coarse 33 x 33 grid over [-5, 5]^2 (and q's mean) finds the candidates, two
// zooms find the mode, and a 33 x 33 grid around the mode, 0.3 posterior widths a step, sums the
// mass; the coarse points outside that window add what mass they hold. That window's step can be two
// posterior widths along a sharp or tilted posterior's thin side, so the mass inside it is summed on a
// grid shaped like the posterior instead: z = mean + L u, L the Cholesky factor of the window's
// covariance, u on a 33 x 33 grid of step 0.35 over [-5.6, 5.6]^2. Runs in slices of about 25 ms
// between which the browser takes its turn, so the page stays responsive; onProgress(fraction) reports.
// The integrand is page/vi.js's Joint (float64); −ELBO of the encoder's q is its elbo (7 x 7 Gauss-Hermite
// points and q's entropy).
(function () {
  "use strict";
  const ll = (window.latentlab = window.latentlab || {});
  function logSumExp(values) {
    let top = -Infinity;
    for (const v of values) if (v > top) top = v;
    if (top === -Infinity) return top;
    let s = 0;
    for (const v of values) s += Math.exp(v - top);
    return top + Math.log(s);
  }

  const frame = () => new Promise((resolve) => setTimeout(resolve, 0));

  // A grid of n x n points (row-major: z2 outer, z1 inner) around (c1, c2) with the given step.
  async function grid(joint, c1, c2, step, n, work) {
    const values = new Float64Array(n * n), half = (n - 1) / 2;
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < n; c++) values[r * n + c] = joint.logJoint([c1 + (c - half) * step, c2 + (r - half) * step]);
      work.done += n;
      await work.tick();
    }
    return {c1, c2, step, n, values, z: (i) => [c1 + ((i % n) - half) * step, c2 + (Math.floor(i / n) - half) * step]};
  }

  function best(g) {
    let b = 0;
    for (let i = 1; i < g.values.length; i++) if (g.values[i] > g.values[b]) b = i;
    return b;
  }

  // Zoom on each start point: 9 x 9 grids at step/4, twice; returns the best point found.
  async function climb(joint, starts, step, work) {
    let top = null;
    for (const [a, b] of starts) {
      let g = await grid(joint, a, b, step / 4, 9, work);
      g = await grid(joint, ...g.z(best(g)), step / 16, 9, work);
      const i = best(g);
      if (!top || g.values[i] > top.value) top = {z: g.z(i), value: g.values[i], grid: g};
    }
    return top;
  }

  // The posterior's spread around the mode from the last zoom grid's second moments (at least 1e-3).
  function spread(g) {
    const lse = logSumExp(g.values);
    let m1 = 0, m2 = 0, v1 = 0, v2 = 0;
    g.values.forEach((v, i) => { const w = Math.exp(v - lse), [a, b] = g.z(i); m1 += w * a; m2 += w * b; });
    g.values.forEach((v, i) => { const w = Math.exp(v - lse), [a, b] = g.z(i); v1 += w * (a - m1) ** 2; v2 += w * (b - m2) ** 2; });
    return Math.max(1e-3, Math.sqrt(Math.max(v1, v2)));
  }

  // The mean and the Cholesky factor of the covariance of a grid's normalised exp(values); the variances are
  // at least (step / 4)^2, so that a peak within one cell still gets a grid around it.
  function moments(g) {
    const lse = logSumExp(g.values), floor = (g.step / 4) ** 2;
    let m1 = 0, m2 = 0, c11 = 0, c12 = 0, c22 = 0;
    g.values.forEach((v, i) => { const w = Math.exp(v - lse), [a, b] = g.z(i); m1 += w * a; m2 += w * b; });
    g.values.forEach((v, i) => {
      const w = Math.exp(v - lse), [a, b] = g.z(i);
      c11 += w * (a - m1) ** 2; c12 += w * (a - m1) * (b - m2); c22 += w * (b - m2) ** 2;
    });
    c11 = Math.max(c11, floor);
    c22 = Math.max(c22, floor);
    const l11 = Math.sqrt(c11), l21 = c12 / l11, l22 = Math.sqrt(Math.max(c22 - l21 * l21, floor));
    return {mean: [m1, m2], chol: [l11, l21, l22]};
  }

  // log p(x, z) on z = mean + L u, u on an n x n grid of step ``unit`` around 0; returns their log-sum-exp
  // times the cell's area |det L| unit^2, and a test of whether a point z lies inside that grid.
  async function shapedMass(joint, {mean, chol: [l11, l21, l22]}, n, unit, work) {
    const half = (n - 1) / 2, values = new Float64Array(n * n);
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < n; c++) {
        const u1 = (c - half) * unit, u2 = (r - half) * unit;
        values[r * n + c] = joint.logJoint([mean[0] + l11 * u1, mean[1] + l21 * u1 + l22 * u2]);
      }
      work.done += n;
      await work.tick();
    }
    const reach = (half + 0.5) * unit;
    const inside = (a, b) => {
      const u1 = (a - mean[0]) / l11, u2 = (b - mean[1] - l21 * u1) / l22;
      return Math.abs(u1) <= reach && Math.abs(u2) <= reach;
    };
    return {logMass: logSumExp(values) + Math.log(l11 * l22 * unit * unit), inside};
  }

  // {negLogPx, negElbo, mode, window: {c1, c2, step, n, logDensity}} of 784 intensities x.
  async function truePosterior(decoder, encoder, x, onProgress = () => {}) {
    const COARSE = 33, RANGE = 5, coarseStep = 2 * RANGE / (COARSE - 1), FINE = 33, SHAPED = 33;
    const work = {done: 0, total: COARSE * COARSE + 5 * 162 + FINE * FINE + SHAPED * SHAPED + 49,
                  report() { onProgress(Math.min(1, this.done / this.total)); },
                  // after each grid row: hand the browser a turn once 25 ms of work have passed
                  last: performance.now(),
                  async tick() { if (performance.now() - this.last > 25) { this.report(); await frame(); this.last = performance.now(); } }};
    const q = encoder.encode(x);
    const joint = new ll.vi.Joint(decoder, x);  // log p(x|z) + log p(z), page/vi.js
    const coarse = await grid(joint, 0, 0, coarseStep, COARSE, work);
    const order = Array.from(coarse.values.keys()).sort((a, b) => coarse.values[b] - coarse.values[a]);
    const starts = [...order.slice(0, 4).map((i) => coarse.z(i)), [q.mean[0], q.mean[1]]];
    const top = await climb(joint, starts, coarseStep, work);
    let step = Math.min(0.3 * spread(top.grid), coarseStep / 16), fine;
    for (let tries = 0; ; tries++) {  // widen the window until its border is 12 nats below the peak
      fine = await grid(joint, top.z[0], top.z[1], step, FINE, work);
      let edge = -Infinity;
      fine.values.forEach((v, i) => {
        const r = Math.floor(i / FINE), c = i % FINE;
        if (r === 0 || c === 0 || r === FINE - 1 || c === FINE - 1) edge = Math.max(edge, v);
      });
      if (edge < fine.values[best(fine)] - 12 || tries === 2) break;
      step *= 2.5;
      work.total += FINE * FINE;
    }
    const shaped = await shapedMass(joint, moments(fine), SHAPED, 0.35, work);
    const half = (FINE - 1) / 2 * step;
    const parts = [shaped.logMass];  // then each point outside the shaped grid, standing for its whole cell
    fine.values.forEach((v, i) => { if (!shaped.inside(...fine.z(i))) parts.push(v + 2 * Math.log(step)); });
    coarse.values.forEach((v, i) => {
      const [a, b] = coarse.z(i);
      if ((Math.abs(a - top.z[0]) > half + coarseStep / 2 || Math.abs(b - top.z[1]) > half + coarseStep / 2) &&
          !shaped.inside(a, b)) {
        parts.push(v + 2 * Math.log(coarseStep));
      }
    });
    const logPx = logSumExp(parts);
    const ne = -ll.vi.elbo(joint, new ll.vi.Q("diagonal", q.mean, q.logvar));
    work.done = work.total;
    work.report();
    const m = best(fine);
    return {negLogPx: -logPx, negElbo: ne, mode: fine.z(m), q,
            window: {c1: top.z[0], c2: top.z[1], step, n: FINE, logDensity: Array.from(fine.values, (v) => v - logPx)}};
  }

  ll.truePosterior = truePosterior;
})();
