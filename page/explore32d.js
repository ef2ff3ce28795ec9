// The 32-D explorer: pick a test image, then move its code along the most informative directions
// with sliders (VAE: the dimensions with the largest KL, in units of the prior's σ; AE: the top
// principal components of the training codes, in units of their standard deviation), interpolate
// towards a second image, or draw a sample; the decoder answers live, the LeNet judges. A drawing
// (draw.js) becomes image A: the sliders then move from the drawing's code.
(function () {
  "use strict";
  const ll = (window.latentlab = window.latentlab || {});
  const RANGE = 3;  // sliders span ±3 units

  class Explorer32D {
    constructor(root, data, decoder, lenet) {
      const nn = ll.nn, dim = data.latent_dim;
      this.data = data;
      this.decoder = decoder;
      this.lenet = lenet;
      this.dim = dim;
      this.thumbCodes = nn.float32(data.thumbs.codes);
      this.thumbImages = nn.bytes(data.thumbs.images);
      const d = data.directions;
      this.origin = Float32Array.from(d.origin);
      this.vectors = nn.float32(d.vectors);
      this.scale = d.scale;
      this.mixture = {weights: data.sampler.weights, means: nn.float32(data.sampler.means),
                      chol: nn.float32(data.sampler.chol)};
      this.pick = "A";
      const id = `explore-${data.key}`;
      const sliders = d.names.map((name, i) => `
        <label class="slider">
          <span class="name">${name}</span>
          <input type="range" min="${-RANGE}" max="${RANGE}" step="0.01" value="0" data-dir="${i}"
                 id="${id}-dir-${i}">
          <output id="${id}-dir-${i}-value">0.00</output>
        </label>`).join("");
      root.innerHTML = `
        <h3>${data.label}</h3>
        <div class="explore32d">
          <div class="picker">
            <div class="pickmode" role="radiogroup">
              <button type="button" class="mode on" data-mode="A" id="${id}-pick-A">
                <span class="vi">Chọn ảnh A</span><span class="en">Pick image A</span></button>
              <button type="button" class="mode" data-mode="B" id="${id}-pick-B">
                <span class="vi">Chọn ảnh B</span><span class="en">Pick image B</span></button>
            </div>
            <div class="thumbs" id="${id}-thumbs"></div>
          </div>
          <div class="readout">
            <canvas class="digit" id="${id}-digit" width="28" height="28"></canvas>
            <div class="verdict" id="${id}-verdict"></div>
            <div class="status" id="${id}-status"></div>
            <div class="buttons">
              <button type="button" class="sample" id="${id}-sample">
                <span class="vi">Lấy mẫu</span><span class="en">Sample</span></button>
              <button type="button" class="reset" id="${id}-reset">
                <span class="vi">Về ảnh A</span><span class="en">Back to A</span></button>
            </div>
          </div>
          <div class="controls">
            ${sliders}
            <label class="slider interp">
              <span class="name">A → B</span>
              <input type="range" min="0" max="1" step="0.01" value="0" id="${id}-interp" disabled>
              <output id="${id}-interp-value">—</output>
            </label>
          </div>
        </div>`;
      this.digit = root.querySelector(".digit");
      this.status = root.querySelector(".status");
      this.verdictBox = root.querySelector(".verdict");
      this.sliders = Array.from(root.querySelectorAll("input[data-dir]"));
      this.interp = root.querySelector(`#${id}-interp`);
      this.thumbs = this.makeThumbs(root.querySelector(".thumbs"));
      this.listen(root);
      this.select("A", 0);
    }

    makeThumbs(box) {
      return this.data.thumbs.labels.map((label, i) => {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "thumb";
        b.title = `${label}`;
        const c = document.createElement("canvas");
        c.width = c.height = 28;
        ll.nn.paintDigit(c, Array.from(this.thumbImages.subarray(784 * i, 784 * (i + 1)), (v) => v / 255));
        b.appendChild(c);
        b.addEventListener("click", () => this.select(this.pick, i));
        box.appendChild(b);
        return b;
      });
    }

    code(i) { return this.thumbCodes.slice(this.dim * i, this.dim * (i + 1)); }

    // Slider k shows (z − origin)·v_k / scale_k.
    coordinate(z, k) {
      let s = 0;
      for (let j = 0; j < this.dim; j++) s += (z[j] - this.origin[j]) * this.vectors[k * this.dim + j];
      return s / this.scale[k];
    }

    show(z, status) {
      this.z = z;
      this.sliders.forEach((s, k) => {
        const c = this.coordinate(z, k);
        s.value = c;
        s.nextElementSibling.textContent = c.toFixed(2);
      });
      this.render(status);
    }

    render(status, image, probs) {
      image = image || this.decoder.decode(this.z);
      ll.nn.paintDigit(this.digit, image);
      this.verdictBox.innerHTML = ll.verdict(probs || this.lenet.classify(image));
      if (status) this.status.innerHTML = status;
    }

    select(which, i) {
      const label = this.data.thumbs.labels[i];
      this.thumbs.forEach((t, j) => t.classList.toggle(`pick${which}`, j === i));
      if (which === "A") {
        this.aCode = this.code(i);
        this.aStatus = `<span class="vi">Ảnh A: chữ số ${label}</span><span class="en">Image A: digit ${label}</span>`;
        this.show(this.aCode, this.aStatus);
      } else {
        this.bCode = this.code(i);
        this.interp.disabled = false;
      }
      if (this.bCode !== undefined) {
        this.interp.value = 0;
        this.interp.nextElementSibling.textContent = "0.00";
        if (which === "B") this.show(this.aCode, this.interpStatus(0));
      }
    }

    // A drawing's code becomes image A (null: back to the first test image).
    showDrawn(code, image, probs) {
      if (!code) {
        if (this.drawnA) { this.drawnA = false; this.select("A", 0); }
        return;
      }
      this.drawnA = true;
      this.thumbs.forEach((t) => t.classList.remove("pickA"));
      this.aCode = Float32Array.from(code.mean);
      this.aStatus = `<span class="vi">Ảnh A: hình bạn vẽ</span><span class="en">Image A: your drawing</span>`;
      this.z = this.aCode;
      this.sliders.forEach((s, k) => {
        const c = this.coordinate(this.z, k);
        s.value = c;
        s.nextElementSibling.textContent = c.toFixed(2);
      });
      this.render(this.aStatus, image, probs);
    }

    interpStatus(t) {
      const kind = this.data.variational ? ["nội suy cầu (slerp)", "spherical"] : ["nội suy tuyến tính", "linear"];
      return `<span class="vi">A → B, ${kind[0]}, t = ${(+t).toFixed(2)}</span>` +
             `<span class="en">A → B, ${kind[1]} interpolation, t = ${(+t).toFixed(2)}</span>`;
    }

    listen(root) {
      root.querySelectorAll(".mode").forEach((m) => m.addEventListener("click", () => {
        this.pick = m.dataset.mode;
        root.querySelectorAll(".mode").forEach((o) => o.classList.toggle("on", o === m));
      }));
      this.sliders.forEach((s, k) => s.addEventListener("input", () => {
        const delta = (+s.value - this.coordinate(this.z, k)) * this.scale[k];
        const z = Float32Array.from(this.z);
        for (let j = 0; j < this.dim; j++) z[j] += delta * this.vectors[k * this.dim + j];
        this.z = z;
        s.nextElementSibling.textContent = (+s.value).toFixed(2);
        this.render();
      }));
      this.interp.addEventListener("input", () => {
        const t = +this.interp.value;
        this.interp.nextElementSibling.textContent = t.toFixed(2);
        this.show(ll.nn.interpolate(this.aCode, this.bCode, t, this.data.variational),
                  this.interpStatus(t));
      });
      root.querySelector(".sample").addEventListener("click", () => {
        const what = this.data.variational ? ["prior N(0, I)", "the prior N(0, I)"]
          : ["GMM trên mã huấn luyện", "the GMM fit on the training codes"];
        this.show(ll.nn.sampleMixture(this.mixture, this.dim),
                  `<span class="vi">Mẫu từ ${what[0]}</span><span class="en">A sample from ${what[1]}</span>`);
      });
      root.querySelector(".reset").addEventListener("click", () => this.show(this.aCode, this.aStatus));
    }
  }

  ll.Explorer32D = Explorer32D;
})();
