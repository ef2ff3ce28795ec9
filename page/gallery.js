// The metrics table (the same cells as README's table: Models/latentlab/metrics.py formats both)
// and every picture of each results folder, with a line on what to look at.
(function () {
  "use strict";
  const ll = (window.latentlab = window.latentlab || {});

  function both(vi, en) { return `<span class="vi">${vi}</span><span class="en">${en}</span>`; }

  // file -> [Vietnamese, English]; a function of the model where the lesson differs by model.
  const CAPTIONS = {
    "loss_curve.png": () => ["Mất mát theo epoch, train và test: đường test còn dốc xuống là mô hình còn học thêm được.",
                             "Loss per epoch, train and test: a test curve still falling means more epochs would help."],
    "reconstructions.png": () => ["Hàng 1 và 3: ảnh test; hàng 2 và 4: ảnh tái tạo. Nét nào không qua được nút cổ chai?",
                                  "Rows 1 and 3: test digits; rows 2 and 4: their reconstructions. Which strokes get lost?"],
    "latent_space.png": (m) => m.latent_dim === 2
      ? ["Mã của 10 000 ảnh test, tô màu theo chữ số: những cụm nào chồng lên nhau?",
         "The codes of all 10,000 test digits, coloured by digit: which clusters overlap?"]
      : ["Bản đồ t-SNE của 1 500 mã test 32-D: các chữ số tách nhau rõ đến đâu?",
         "A t-SNE map of 1,500 test codes: how well do the digits separate in 32-D?"],
    "latent_space_grid_sampling.png": (m) => m.variational
      ? ["Giải mã lưới tại các phân vị của N(0, 1): mọi điểm trong prior đều cho ra một chữ số.",
         "Decoded at quantiles of N(0, 1): every point of the prior gives a digit."]
      : ["Giải mã một lưới đều trên vùng chứa mã: giữa các cụm là những hình nhoè mà decoder chưa từng thấy.",
         "A grid over the region of the codes: between the clusters, blurs the decoder never saw."],
    "latent_space_classified_random_samples.png": () => [
      "Mặt phẳng tô màu theo nhãn kNN, cùng mẫu ngẫu nhiên từ prior: vùng nào sinh ra chữ số nào, và bao nhiêu.",
      "The plane coloured by kNN label, with random prior samples: which region makes which digit, and how often."],
    "sampling_1.gif": () => ["Chấm đỏ đi một vòng quanh dữ liệu; bên phải là ảnh giải mã tại chấm.",
                             "The red point loops around the codes; on the right, the digit decoded there."],
    "sampling_2.gif": () => ["Chấm đỏ đi qua tâm cụm của từng chữ số: chữ số biến đổi thế nào giữa hai cụm?",
                             "A tour through every digit's cluster centre: how does one digit morph into the next?"],
    "vae_latent_walk.gif": () => ["Đi trong prior (vòng tròn 1,5σ rồi hình số 8): không có vùng chết.",
                                  "A walk through the prior (a 1.5σ circle, then a figure eight): no dead zones."],
    "posterior_evolution.gif": () => ["Mã test sau từng epoch: số hạng KL kéo chúng thành một đĩa quanh gốc toạ độ.",
                                      "Test codes after every epoch: the KL term pulls them into a disk around the origin."],
    "latent_walk.gif": (m) => m.variational
      ? ["Nội suy cầu (slerp) giữa các ảnh test thuộc những chữ số khác nhau.",
         "Spherical interpolation (slerp) between test digits of different classes."]
      : ["Nội suy tuyến tính giữa các ảnh test thuộc những chữ số khác nhau.",
         "Linear interpolation between test digits of different classes."],
    "samples.png": (m) => m.variational
      ? ["64 ảnh sinh từ prior N(0, I): rõ nét đến đâu, có đủ mười chữ số không?",
         "64 samples from the prior N(0, I): how sharp, and are all ten digits there?"]
      : ["64 ảnh sinh từ GMM 10 thành phần học trên mã huấn luyện (AE tự nó không sinh được).",
         "64 samples from a 10-component GMM fit on the training codes (an AE alone cannot sample)."],
    "latent_pca.png": () => ["PCA của mã test 32-D: hai hướng có phương sai lớn nhất.",
                             "PCA of the 32-D test codes: the two directions of largest variance."],
    "kl_per_dim.png": () => ["KL của từng chiều: chiều xám (KL ≈ 0) bị tắt, posterior trùng prior.",
                             "KL of each dimension: grey ones (KL ≈ 0) are switched off, posterior = prior."],
    "label_planes.png": () => ["Cùng một lưới z giải mã với từng nhãn y: một vị trí trên mặt phẳng là một kiểu chữ ở mọi chữ số.",
                               "The same grid of z under each label y: one place in the plane is one style for every digit."],
    "style_transfer.png": () => ["Mã z của một ảnh test giải mã với cả mười nhãn: giữ nét chữ, đổi chữ số.",
                                 "One test digit's z decoded under all ten labels: style kept, digit changed."],
    "true_posterior.png": () => ["Hậu nghiệm thật p(z|x), tính chính xác trên lưới, dưới elip của q(z|x) mà encoder đoán.",
                                 "The true posterior p(z|x), exact on a grid, under the ellipses of the encoder's q(z|x)."],
    "fitted_posteriors.png": () => ["q* tối ưu riêng cho từng ảnh (chéo, đầy đủ, flow) so với q của encoder: khoảng cách khấu hao và xấp xỉ.",
                                    "Each digit's own best q* (diagonal, full, flow) against the encoder's q: the amortization and approximation gaps."],
  };

  function runLine(model, data) {
    if (!data) {
      return both(`Chưa có kết quả. Chạy <code>python Models/${model.script}</code> rồi tải lại trang.`,
                  `No results yet. Run <code>python Models/${model.script}</code>, then reload the page.`);
    }
    const r = data.run;
    const subset = r.train_subset ? `, train subset ${r.train_subset}` : "";
    const scored = r.test_subset ? `, test subset ${r.test_subset}` : "";
    return `${r.epochs} epochs, seed ${r.seed}, ${r.precision}, ${r.device}${subset}${scored} · ${data.written}`;
  }

  function table(models, datasets) {
    const first = models.map((m) => datasets[m.key]).find(Boolean);
    const el = document.getElementById("metrics-table");
    if (!first) {
      el.innerHTML = `<tbody><tr><td>${both("Chưa có mô hình nào được huấn luyện.", "No model has been trained yet.")}</td></tr></tbody>`;
      return;
    }
    const head = `<thead><tr><th>model</th>${first.table.columns.map((c) => `<th>${c}</th>`).join("")}</tr></thead>`;
    // A run scored on part of the test set (--test-subset) is marked: its numbers are not the table's kind.
    const partial = models.filter((m) => datasets[m.key] && datasets[m.key].run.test_subset);
    const rows = models.map((m) => {
      const d = datasets[m.key];
      const cells = d ? d.table.cells.map((c) => `<td>${c}</td>`).join("")
        : `<td class="missing" colspan="${first.table.columns.length}">${runLine(m, null)}</td>`;
      const mark = partial.includes(m) ? ' <sup class="subset">†</sup>' : "";
      return `<tr data-model="${m.key}"><th scope="row">${m.label}${mark}</th>${cells}</tr>`;
    }).join("");
    const note = partial.length === 0 ? "" : `<caption class="subset-note">† ${both(
      partial.map((m) => `${m.label}: chỉ chấm trên ${datasets[m.key].run.test_subset} ảnh test đầu tiên`).join("; ")
        + " — không so được với các hàng khác.",
      partial.map((m) => `${m.label}: scored on the first ${datasets[m.key].run.test_subset} test images only`).join("; ")
        + " — not comparable with the other rows.")}</caption>`;
    el.innerHTML = note + head + `<tbody>${rows}</tbody>`;
  }

  function gallery(models, datasets) {
    const grid = document.getElementById("gallery-grid");
    grid.innerHTML = models.map((m) => {
      const d = datasets[m.key];
      const figures = d ? d.figures.map((name) => {
        const src = `${encodeURI(m.dir)}/${name}?v=${encodeURIComponent(d.written)}`;
        const caption = CAPTIONS[name] ? both(...CAPTIONS[name](d)) : "";
        return `<figure><a href="${src}"><img src="${src}" alt="${m.label}: ${name}" loading="lazy"></a>
                <figcaption><code>${name}</code> ${caption}</figcaption></figure>`;
      }).join("") : "";
      return `<article class="card" data-model="${m.key}"><h3>${m.label}</h3>
              <p class="run">${runLine(m, d)}</p>${figures}</article>`;
    }).join("");
  }

  ll.gallery = {table, gallery, runLine, both};
})();
