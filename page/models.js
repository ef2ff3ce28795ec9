// The models the page shows, one line each, in the order of Models/latentlab/registry.py
// (tests/test_page.py checks that the two lists agree). Each script writes its page_data.js into
// its results folder ("dir"); the page loads them with <script> tags, since browsers refuse fetch()
// of files opened from file://.
window.LATENTLAB_MODELS = [
  {key: "ae2", label: "AE 2-D", dir: "Kết_quả_huấn_luyện_Autoencoder/2D_latent_AE",
   script: "Auto_enoder_MNIST_with_sampling_animation.py", latent_dim: 2},
  {key: "vae2", label: "VAE 2-D", dir: "Kết_quả_huấn_luyện_Variational_Autoecoder/2D_latent_VAE",
   script: "Variational_AutoEncoder_with_sampling_animation.py", latent_dim: 2},
  {key: "ae32", label: "AE 32-D", dir: "Kết_quả_huấn_luyện_Autoencoder/32D_latent_AE",
   script: "Auto_enoder_MNIST.py", latent_dim: 32},
  {key: "vae32", label: "VAE 32-D", dir: "Kết_quả_huấn_luyện_Variational_Autoecoder/32D_latent_VAE",
   script: "Variational_AutoEncoder.py", latent_dim: 32},
  {key: "cvae2", label: "CVAE 2-D", dir: "Kết_quả_huấn_luyện_Variational_Autoecoder/2D_latent_CVAE",
   script: "Conditional_Variational_AutoEncoder.py", latent_dim: 2},
];
