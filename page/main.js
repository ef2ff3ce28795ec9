// Loads each results folder's page_data.js, then builds the explorers, the table and the gallery.
// A model whose folder has no data yet gets a line telling which script to run; the rest works.
// window.latentlab.models and window.latentlab.decode(name, z) are the tests' hook.
(function () {
  "use strict";
  const ll = (window.latentlab = window.latentlab || {});
  const MODELS = window.LATENTLAB_MODELS;

  // A <script> per data file (fetch() is refused on file://); resolves true when it loaded.
  function load(model) {
    return new Promise((resolve) => {
      const s = document.createElement("script");
      s.src = `${encodeURI(model.dir)}/page_data.js?v=${Date.now()}`;  // never a stale copy on reload
      s.onload = () => resolve(true);
      s.onerror = () => resolve(false);
      document.head.appendChild(s);
    });
  }

  function panels(containerId, models, datasets, decoders, Explorer) {
    const box = document.getElementById(containerId);
    box.innerHTML = "";
    for (const m of models) {
      const panel = document.createElement("div");
      panel.className = "panel";
      box.appendChild(panel);
      if (datasets[m.key]) {
        new Explorer(panel, datasets[m.key], decoders[m.key]);
      } else {
        panel.innerHTML = `<h3>${m.label}</h3><p class="missing">${ll.gallery.runLine(m, null)}</p>`;
      }
    }
  }

  function legend() {
    document.getElementById("digit-legend").innerHTML = ll.DIGIT_COLORS.map(
      (c, d) => `<span><i style="background:${c}"></i>${d}</span>`).join("");
  }

  function languageToggle() {
    const button = document.getElementById("lang");
    const set = (en) => {
      document.body.classList.toggle("lang-en", en);
      document.documentElement.lang = en ? "en" : "vi";
      try { localStorage.setItem("latentlab-lang", en ? "en" : "vi"); } catch (e) { /* file:// may refuse */ }
    };
    let saved = null;
    try { saved = localStorage.getItem("latentlab-lang"); } catch (e) { /* idem */ }
    set(saved === "en");
    button.addEventListener("click", () => set(!document.body.classList.contains("lang-en")));
  }

  async function main() {
    languageToggle();
    const present = await Promise.all(MODELS.map(load));
    const all = window.LATENTLAB_DATA || {};
    const datasets = {}, decoders = {};
    MODELS.forEach((m, i) => {
      if (present[i] && all[m.key]) {
        datasets[m.key] = all[m.key];
        decoders[m.key] = new ll.nn.Decoder(all[m.key].decoder);
      }
    });
    legend();
    panels("panels-2d", MODELS.filter((m) => m.latent_dim === 2), datasets, decoders, ll.Explorer2D);
    panels("panels-32d", MODELS.filter((m) => m.latent_dim !== 2), datasets, decoders, ll.Explorer32D);
    ll.gallery.table(MODELS, datasets);
    ll.gallery.gallery(MODELS, datasets);

    ll.models = {};
    for (const key of Object.keys(datasets)) {
      const d = datasets[key];
      ll.models[key] = {label: d.label, kind: d.kind, latent_dim: d.latent_dim};
    }
    ll.missing = MODELS.filter((m) => !datasets[m.key]).map((m) => m.key);
    ll.data = datasets;
    ll.decode = (name, z) => Array.from(decoders[name].decode(Float32Array.from(z)));
    ll.renderMs = performance.now();  // since navigation started
    ll.ready = true;
    document.body.classList.add("ready");
  }

  main();
})();
