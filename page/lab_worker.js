// One model of the "train it yourself" lab, training in its own Web Worker: page/lab.js makes the
// worker from a Blob holding latentlabLabMath (page/lab_math.js) and this function, which works from
// file:// and from any static host. It trains on the lab's digits in minibatches, in slices of
// about 40 ms so that messages (pause, β, learning rate) apply from the next step, and a few times
// a second posts a "tick": the codes of the page's test pool, a 3 × 3 grid of decoded points, the
// mean losses since the last tick and the speed.
function latentlabLabWorker(self, math) {
  "use strict";
  // A tick re-encodes a quarter of the test pool (each dot is at most 4 ticks old): encoding all
// 2,000 digits five times a second would take about half of the worker's time.
const BATCH = 64, SLICE_MS = 40, TICK_MS = 160, PARTS = 4;
  let kind, sizes, train, pool, meanImage, model, adam, random, order, at, reader, painter, shown, part0 = 0, beta = 1, lr = 3e-3, running = false;
  const clock = {train: 0, tick: 0, since: 0};  // ms spent training and posting ticks since the run began
  let stopAt = Infinity;  // training images after which a run pauses itself ("run" with a number of steps)
  let images = 0, sums = {rec: 0, kl: 0, n: 0}, means = {rec: null, kl: null}, lastTick = 0, since = {t: 0, images: 0, macs: 0}, speed = 0, gflops = 0;
  const LEVEL = Float32Array.from({length: 16}, (_, v) => v / 15);  // the 16 grey levels of the data

  // Copies digits idx[0..n) of a {levels, n} set into out (n × 784 intensities).
  function fill(set, idx, n, out) {
    for (let s = 0; s < n; s++) {
      const src = idx[s] * 784, dst = s * 784;
      for (let i = 0; i < 784; i++) out[dst + i] = LEVEL[set.levels[src + i]];
    }
  }

  function shuffle() {  // Fisher-Yates with the run's own generator: one epoch's order
    order = Uint32Array.from({length: train.n}, (_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random.uniform() * (i + 1)), t = order[i];
      order[i] = order[j]; order[j] = t;
    }
    at = 0;
  }

  function reset(seed) {
    model = new math.Model(kind, sizes, BATCH);
    model.init(seed, meanImage);
    adam = new math.Adam(model, lr);
    // an encoder and a decoder with their own buffers that read the model's weights, for the ticks
    reader = new math.MLP(model.encoder.layers.map((l) => l.nIn).concat(model.encoder.layers.at(-1).nOut), BATCH);
    painter = new math.MLP([...sizes].reverse(), 9);
    [[reader, model.encoder], [painter, model.decoder]].forEach(([copy, of]) =>
      copy.layers.forEach((layer, l) => { layer.wt = of.layers[l].wt; layer.b = of.layers[l].b; }));
    random = math.rng(seed + 0x9e3779b9);  // batches and noise: a stream apart from the weights'
    images = 0; sums = {rec: 0, kl: 0, n: 0}; means = {rec: null, kl: null}; speed = 0; gflops = 0;
    shown = new Float32Array(pool.n * model.latent);
    shuffle();
  }

  // One Adam step on the next minibatch (the last, short batch of an epoch is dropped).
  function step() {
    if (at + BATCH > train.n) shuffle();
    fill(train, order.subarray(at, at + BATCH), BATCH, model.x);
    at += BATCH;
    if (kind === "vae") for (let i = 0; i < model.eps.length; i++) model.eps[i] = random.normal();
    const r = model.lossAndGrads(BATCH, beta);
    adam.step();
    images += BATCH; sums.rec += r.rec; sums.kl += r.kl; sums.n += 1;
  }

  // The codes (posterior means for the VAE) of the digits [from, to) of a set, written into out
  // (n × latent, a new Float32Array unless given).
  function codes(set, out = new Float32Array(set.n * model.latent), from = 0, to = set.n) {
    const d = model.latent, width = kind === "vae" ? 2 * d : d;
    const idx = new Uint32Array(BATCH);
    for (let s0 = from; s0 < to; s0 += BATCH) {
      const n = Math.min(BATCH, to - s0);
      for (let s = 0; s < n; s++) idx[s] = s0 + s;
      fill(set, idx, n, reader.acts[0]);
      const h = reader.forward(n);
      for (let s = 0; s < n; s++) for (let j = 0; j < d; j++) out[(s0 + s) * d + j] = h[s * width + j];
    }
    return out;
  }

  // The view of the plane: the 1st to 99th percentile of the codes on each axis, padded by a tenth
  // (for the VAE at least the prior's 3σ disk); and the 3 × 3 grid of points decoded in it.
  function view(c) {
    const box = [0, 1].map((axis) => {
      const v = Float32Array.from({length: c.length / 2}, (_, i) => c[2 * i + axis]).sort();
      let lo = v[Math.floor(0.01 * v.length)], hi = v[Math.floor(0.99 * v.length)];
      const pad = 0.1 * (hi - lo || 1);
      lo -= pad; hi += pad;
      if (kind === "vae") { lo = Math.min(lo, -3.3); hi = Math.max(hi, 3.3); }
      return [lo, hi];
    });
    const points = new Float32Array(18);
    for (let r = 0; r < 3; r++) for (let q = 0; q < 3; q++) {
      points[2 * (3 * r + q)] = box[0][0] + (q + 0.5) / 3 * (box[0][1] - box[0][0]);
      points[2 * (3 * r + q) + 1] = box[1][1] - (r + 0.5) / 3 * (box[1][1] - box[1][0]);
    }
    return {box, points};
  }

  function decode(points) {  // sigmoid of the decoder's logits at each of the 9 points
    const out = new Float32Array(9 * 784);
    painter.acts[0].set(points);
    const logits = painter.forward(9);
    for (let i = 0; i < out.length; i++) out[i] = 1 / (1 + Math.exp(-logits[i]));
    return out;
  }

  // The pool's codes: all of them after a reset, else the next quarter.
  function poolCodes(all) {
    const part = Math.ceil(pool.n / PARTS);
    if (all) { codes(pool, shown); part0 = 0; return; }
    codes(pool, shown, part0 * part, Math.min(pool.n, (part0 + 1) * part));
    part0 = (part0 + 1) % PARTS;
  }

  function tick(all = false) {
    poolCodes(all);
    const now = performance.now(), c = shown.slice(), v = view(c), macs = model.macs;
    if (now - since.t >= 1000) {  // images/s and GFLOP/s over the last second or more
      if (since.t) {
        speed = (images - since.images) / ((now - since.t) / 1000);
        gflops = 2 * (macs - since.macs) / ((now - since.t) / 1e3) / 1e9;
      }
      since = {t: now, images, macs};
    }
    const fresh = sums.n > 0;  // mean losses of the batches since the last tick, else the last ones again
    if (fresh) means = {rec: sums.rec / sums.n, kl: sums.kl / sums.n};
    sums = {rec: 0, kl: 0, n: 0};
    self.postMessage({type: "tick", kind, images, imagesPerSecond: speed, gflops, macs, beta, lr, ...means, fresh,
                      clock: {trainMs: clock.train, tickMs: clock.tick, wallMs: now - clock.since},
                      codes: c, box: v.box, points: v.points, decoded: decode(v.points), running}, [c.buffer]);
    lastTick = now;
  }

  // Train for one slice, post a tick when one is due, and come back through a MessageChannel
  // (setTimeout would be clamped to 4 ms and is throttled in hidden tabs).
  const channel = new MessageChannel();
  channel.port1.onmessage = () => {
    if (!running) return;
    const t0 = performance.now();
    while (performance.now() - t0 < SLICE_MS && images < stopAt) step();
    const t1 = performance.now();
    clock.train += t1 - t0;
    if (images >= stopAt) { running = false; stopAt = Infinity; tick(true); return; }  // its steps are done
    if (t1 - lastTick >= TICK_MS) { tick(); clock.tick += performance.now() - t1; }
    channel.port2.postMessage(0);
  };

  self.onmessage = (e) => {
    const m = e.data;
    if (m.type === "init") {
      ({kind, sizes} = m);
      train = m.train; pool = m.pool; beta = m.beta ?? beta; lr = m.lr ?? lr;
      const sum = new Float64Array(784);  // the mean training image, where every reset starts the decoder
      for (let s = 0; s < train.n; s++) for (let i = 0; i < 784; i++) sum[i] += LEVEL[train.levels[s * 784 + i]];
      meanImage = Float32Array.from(sum, (v) => v / train.n);
      reset(m.seed);
      tick(true);
    } else if (m.type === "reset") {
      lr = m.lr ?? lr;
      reset(m.seed);
      since = {t: 0, images: 0, macs: 0};
      tick(true);
    } else if (m.type === "set") {
      if (m.beta !== undefined) beta = m.beta;
      if (m.lr !== undefined) { lr = m.lr; adam.lr = lr; }
      if (!running) tick();
    } else if (m.type === "run") {
      if (!running) {
        running = true; since = {t: 0, images: 0, macs: 0};
        stopAt = m.steps ? images + m.steps * BATCH : Infinity;
        Object.assign(clock, {train: 0, tick: 0, since: performance.now()});
        channel.port2.postMessage(0);
      }
    } else if (m.type === "pause") {
      running = false;
      speed = 0;
      tick(true);
    } else if (m.type === "codes") {  // the pool's or the training digits' codes, for the tests
      const c = codes(m.which === "train" ? train : pool);
      self.postMessage({type: "codes", id: m.id, codes: c}, [c.buffer]);
    }
  };
}
