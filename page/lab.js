// "Train it yourself": an AE and a VAE with 2-D codes learning side by side, each in a Web Worker
// (page/lab_worker.js, made from a Blob so that it runs from file://), on the lab's 10,000 training
// digits, which load (page/lab_data.js, by an injected <script>) only when the section is first used.
// Draws what the workers post: the page's test pool in each code plane, the loss curves, the speed
// and a 3 × 3 grid of decoded points. Test hooks on window.latentlab.lab: sizes, start(steps), pause(),
// reset(seed), setBeta(b), stats(), running(), codes(kind), trainCodes(kind), step(kind, params, x, eps, beta),
// adam(kind, params, xs, epss, beta, lr).
(function () {
  "use strict";
  const ll = (window.latentlab = window.latentlab || {});
  // The encoder's widths, input first (the decoder mirrors them): chosen by measurement (docs/page.md);
  // benchmarks/page_speed.py --lab-sizes tries others through window.LATENTLAB_LAB_SIZES.
  const SIZES = window.LATENTLAB_LAB_SIZES || [784, 128, 32, 2];
  const KINDS = ["ae", "vae"], LABEL = {ae: "AE", vae: "VAE"};
  const BETAS = [0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 1.5, 2, 3, 4];  // the slider's stops
  const RATES = [1e-3, 3e-3, 1e-2];
  const math = latentlabLabMath();  // the same code the workers run, for step() and adam()

  const both = (vi, en) => `<span class="vi">${vi}</span><span class="en">${en}</span>`;
  const both2 = (vi, en) => (document.body.classList.contains("lang-en") ? en : vi);  // text drawn on a canvas

  class Lab {
    constructor(box, pool) {
      this.box = box; this.pool = pool;
      this.seed = 0; this.lr = 3e-3; this.beta = 1; this.running = false;
      this.last = {}; this.history = {ae: [], vae: []}; this.pending = new Map(); this.asked = 0;
      this.build();
    }

    build() {
      this.box.innerHTML = `
        <div class="lab-controls">
          <button type="button" class="lab-run">${both("Huấn luyện", "Train")}</button>
          <button type="button" class="lab-reset">${both("Làm lại", "Reset")}</button>
          <label>seed <input class="lab-seed" type="number" min="0" max="9999" value="0"></label>
          <label>${both("tốc độ học", "learning rate")} <select class="lab-lr">${RATES.map((r) =>
            `<option value="${r}"${r === this.lr ? " selected" : ""}>${r}</option>`).join("")}</select></label>
          <label class="lab-beta">β <input type="range" min="0" max="${BETAS.length - 1}" step="1"
            value="${BETAS.indexOf(1)}"> <output>1</output></label>
        </div>
        <p class="lab-status">${both("Bấm “Huấn luyện”: 10 000 ảnh huấn luyện (1,4 MB) tải về lúc đó.",
                                     "Press “Train”: the 10,000 training digits (1.4 MB) load then.")}</p>
        <div class="panels lab-panels">${KINDS.map((k) => `
          <div class="panel lab-panel" data-kind="${k}">
            <h3>${LABEL[k]} <span class="lab-speed"></span></h3>
            <canvas class="lab-plane" width="600" height="600"></canvas>
            <div class="lab-side">
              <div class="lab-grid">${Array.from({length: 9}, () => `<canvas width="28" height="28"></canvas>`).join("")}</div>
              <canvas class="lab-curve" width="600" height="260"></canvas>
              <p class="lab-numbers"></p>
            </div>
          </div>`).join("")}</div>`;
      const q = (s) => this.box.querySelector(s);
      this.runButton = q(".lab-run");
      // a failed load has already said why in the status line
      this.runButton.addEventListener("click", () => (this.running ? this.pause() : this.start().catch(() => {})));
      q(".lab-reset").addEventListener("click", () => this.reset(Number(q(".lab-seed").value) || 0).catch(() => {}));
      q(".lab-lr").addEventListener("change", (e) => {
        this.lr = Number(e.target.value);
        this.post({type: "set", lr: this.lr});
      });
      const slider = q(".lab-beta input");
      slider.addEventListener("input", () => this.setBeta(BETAS[Number(slider.value)]));
      this.status = q(".lab-status");
    }

    // Loads the data and starts the two workers, once; resolves when both have posted a first tick.
    ready() {
      if (this.started) return this.started;
      this.status.innerHTML = both("Đang tải dữ liệu…", "Loading the data…");
      this.started = new Promise((resolve, reject) => {
        const s = document.createElement("script");
        s.src = "page/lab_data.js";
        s.onload = () => resolve();
        s.onerror = () => reject(new Error("page/lab_data.js is missing: run python Models/train_classifier.py --stats-only"));
        document.head.appendChild(s);
      }).then(async () => {
        const data = window.LATENTLAB_LAB, levels = await ll.nn.inflate(data.levels);
        const train = {levels, n: levels.length / 784, labels: ll.nn.bytes(data.labels)};
        const pool = {levels: this.pool.levels, n: this.pool.labels.length};
        this.trainLabels = train.labels;
        const source = `const latentlabLabMath = ${latentlabLabMath};\n(${latentlabLabWorker})(self, latentlabLabMath());`;
        const url = URL.createObjectURL(new Blob([source], {type: "text/javascript"}));
        this.workers = {};
        const first = KINDS.map((kind) => new Promise((done) => {
          const w = (this.workers[kind] = new Worker(url));
          w.onmessage = (e) => { this.receive(e.data); if (e.data.type === "tick") done(); };
          w.postMessage({type: "init", kind, sizes: SIZES, seed: this.seed, lr: this.lr, beta: kind === "vae" ? this.beta : 0,
                         train: {levels: train.levels, n: train.n}, pool: {levels: pool.levels, n: pool.n}});
        }));
        await Promise.all(first);
        this.status.innerHTML = "";
      });
      this.started.catch((e) => { this.status.textContent = e.message; });
      return this.started;
    }

    post(message, only) {
      if (!this.workers) return;
      for (const kind of only ? [only] : KINDS) this.workers[kind].postMessage(message);
    }

    // steps: each model pauses itself after that many Adam steps (the tests train a fixed amount)
    async start(steps) {
      await this.ready();
      this.running = true;
      this.runButton.innerHTML = both("Tạm dừng", "Pause");
      this.post({type: "run", steps});
    }

    pause() {
      this.running = false;
      this.runButton.innerHTML = both("Huấn luyện", "Train");
      this.post({type: "pause"});
    }

    async reset(seed) {
      this.seed = seed;
      this.box.querySelector(".lab-seed").value = seed;
      this.history = {ae: [], vae: []};
      await this.ready();
      this.post({type: "reset", seed, lr: this.lr});
    }

    setBeta(b) {  // the VAE's KL weight, from its next step
      this.beta = b;
      const slider = this.box.querySelector(".lab-beta input"), i = BETAS.indexOf(b);
      if (i >= 0) slider.value = i;
      this.box.querySelector(".lab-beta output").textContent = b;
      this.post({type: "set", beta: b}, "vae");
    }

    receive(m) {
      if (m.type === "codes") { this.pending.get(m.id)(m.codes); this.pending.delete(m.id); return; }
      this.last[m.kind] = m;
      if (this.running && KINDS.every((k) => this.last[k] && !this.last[k].running)) {  // both ran their steps
        this.running = false;
        this.runButton.innerHTML = both("Huấn luyện", "Train");
      }
      if (m.fresh) this.history[m.kind].push([m.images, m.rec, m.kl]);
      this.draw(m);
    }

    // ------------------------------------------------------------ drawing

    draw(m) {
      const panel = this.box.querySelector(`.lab-panel[data-kind="${m.kind}"]`);
      this.plane(panel.querySelector(".lab-plane"), m);
      panel.querySelectorAll(".lab-grid canvas").forEach((c, i) => ll.nn.paintDigit(c, m.decoded.subarray(784 * i, 784 * (i + 1))));
      this.curve(panel.querySelector(".lab-curve"), this.history[m.kind], m.kind);
      panel.querySelector(".lab-speed").textContent = m.imagesPerSecond ? `${Math.round(m.imagesPerSecond)} img/s` : "";
      const f = (v) => (v === null || v === undefined ? "–" : v.toFixed(1));
      panel.querySelector(".lab-numbers").innerHTML =
        `${both("ảnh đã học", "images seen")} ${m.images.toLocaleString("en-US")} · ${both("tái tạo", "rec.")} ${f(m.rec)} nats` +
        (m.kind === "vae" ? ` · KL ${f(m.kl)} nats · β ${m.beta}` : "");
    }

    plane(canvas, m) {
      const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, [[x0, x1], [y0, y1]] = m.box;
      const px = (x) => ((x - x0) / (x1 - x0)) * W, py = (y) => H - ((y - y0) / (y1 - y0)) * H;
      ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
      if (m.kind === "vae") {  // the prior's 1σ, 2σ and 3σ circles
        ctx.strokeStyle = "#bbb"; ctx.lineWidth = 1.5;
        for (const r of [1, 2, 3]) {
          ctx.beginPath();
          ctx.ellipse(px(0), py(0), (r / (x1 - x0)) * W, (r / (y1 - y0)) * H, 0, 0, 2 * Math.PI);
          ctx.stroke();
        }
      }
      const c = m.codes, labels = this.pool.labels;
      for (let i = 0; i < labels.length; i++) {
        ctx.fillStyle = ll.DIGIT_COLORS[labels[i]];
        ctx.fillRect(px(c[2 * i]) - 2.5, py(c[2 * i + 1]) - 2.5, 5, 5);
      }
      ctx.strokeStyle = "#000"; ctx.lineWidth = 2;  // the 9 decoded points, numbered as the grid beside
      for (let k = 0; k < 9; k++) {
        const x = px(m.points[2 * k]), y = py(m.points[2 * k + 1]);
        ctx.beginPath(); ctx.moveTo(x - 7, y); ctx.lineTo(x + 7, y); ctx.moveTo(x, y - 7); ctx.lineTo(x, y + 7); ctx.stroke();
      }
    }

    // Reconstruction (dark) and, for the VAE, KL (orange, its own scale) against images seen.
    curve(canvas, points, kind) {
      const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
      ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
      if (points.length < 2) return;
      const last = points[points.length - 1][0], rec = points.map((p) => p[1]);
      const lo = Math.min(...rec) * 0.97, hi = Math.max(...rec) * 1.02, klTop = Math.max(1, ...points.map((p) => p[2])) * 1.1;
      ctx.font = "22px sans-serif"; ctx.fillStyle = "#222";
      ctx.fillText(`${both2("tái tạo", "rec.")} ${Math.round(hi)}…${Math.round(lo)} nats`, 8, 26);
      if (kind === "vae") { ctx.fillStyle = "#e6550d"; ctx.fillText(`KL 0…${Math.round(klTop)}`, 8, 52); ctx.fillStyle = "#222"; }
      ctx.textAlign = "right";
      ctx.fillText(`${last.toLocaleString("en-US")} ${both2("ảnh", "images")}`, W - 8, 26);
      ctx.textAlign = "left";
      for (const [col, color] of kind === "vae" ? [[1, "#222"], [2, "#e6550d"]] : [[1, "#222"]]) {
        ctx.strokeStyle = color; ctx.lineWidth = 3; ctx.beginPath();
        points.forEach((p, i) => {
          const x = (p[0] / last) * W, y = col === 1 ? H - ((p[1] - lo) / (hi - lo)) * H : H - (p[2] / klTop) * H;
          if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
        });
        ctx.stroke();
      }
    }

    // ------------------------------------------------------------ for the tests

    stats() {
      const out = {};
      for (const k of KINDS) {
        const m = this.last[k] || {};
        out[k] = {images: m.images || 0, imagesPerSecond: m.imagesPerSecond || 0, rec: m.rec ?? null, kl: m.kl ?? null,
                  gflops: m.gflops || 0, macs: m.macs || 0, beta: m.beta, clock: m.clock};
      }
      return out;
    }

    async ask(kind, which) {
      await this.ready();
      const id = ++this.asked;
      const codes = await new Promise((resolve) => {
        this.pending.set(id, resolve);
        this.workers[kind].postMessage({type: "codes", which, id});
      });
      const labels = which === "train" ? this.trainLabels : this.pool.labels;
      return {codes: Array.from(codes), labels: Array.from(labels)};
    }
  }

  // step(): one forward and backward pass of the lab's mathematics on given weights, batch and noise.
  function model(kind, params, n) {
    const m = new math.Model(kind, SIZES, n);
    m.load(params);
    return m;
  }

  function setBatch(m, x, eps) {
    m.x.set(x.flat());
    if (eps) m.eps.set(eps.flat());
  }

  function step(kind, params, x, eps, beta) {
    const m = model(kind, params, x.length);
    setBatch(m, x, eps);
    const r = m.lossAndGrads(x.length, beta);
    return {...r, grads: m.state("grads")};
  }

  function adam(kind, params, xs, epss, beta, lr) {  // len(xs) Adam steps; the parameters after them
    const m = model(kind, params, xs[0].length), opt = new math.Adam(m, lr);
    xs.forEach((x, t) => {
      setBatch(m, x, epss && epss[t]);
      m.lossAndGrads(x.length, beta);
      opt.step();
    });
    return m.state("params");
  }

  ll.Lab = Lab;
  ll.labHooks = (lab) => ({
    sizes: SIZES,
    start: (steps) => lab.start(steps), pause: () => lab.pause(), reset: (seed) => lab.reset(seed),
    setBeta: (b) => lab.setBeta(b), stats: () => lab.stats(), running: () => lab.running,
    codes: (kind) => lab.ask(kind, "pool"), trainCodes: (kind) => lab.ask(kind, "train"),
    step, adam,
  });
})();
