"""Train the small LeNet that judges reconstructions and generated digits (recon_accuracy,
sample_confidence, sample_class_entropy, fid_mnist), and save its weights beside the package.

Run once; the weights (< 1 MB), their test accuracy, the test digits' feature statistics (FID's
reference side) and the page's shared data file (page/shared_data.js: this LeNet for the browser and
the test digits the page shows; page/lab_data.js: the training digits of the page's lab) are committed:
    python Models/train_classifier.py [--stats-only]
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from latentlab import UserError
from latentlab.checkpoints import CLASSIFIER_PATH, load_classifier, save_classifier
from latentlab.cli import DEVICE_HELP, EXIT_USER_ERROR, Parser, integer, pick_device, positive, seed_everything
from latentlab.data import load_mnist
from latentlab.metrics import REFERENCE_STATS_PATH, classify, save_reference_stats
from latentlab.models import LeNet
from latentlab.page_export import LAB_FILE, SHARED_FILE, lab_data, shared_data, write_lab, write_shared

PROG = "train_classifier.py"
SHARED_PATH = Path(__file__).resolve().parents[1] / "page" / SHARED_FILE
LAB_PATH = SHARED_PATH.with_name(LAB_FILE)


def build_parser():
    p = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=positive(int), default=4, help="training epochs (default: 4)")
    p.add_argument("--batch-size", type=positive(int), default=128, help="images per batch (default: 128)")
    p.add_argument("--lr", type=positive(float), default=2e-3, help="peak Adam learning rate (default: 0.002)")
    p.add_argument("--seed", type=integer, default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--stats-only", action="store_true",
                   help="keep the committed weights; only rewrite the reference statistics and the page's "
                        "shared data file (default: off)")
    return p


def train(net, x_train, y_train, optimizer, scheduler, batch_size):
    """One epoch over the training digits in random order, each batch shifted by up to 2 pixels."""
    net.train()
    perm = torch.randperm(len(x_train), device=x_train.device)
    for start in range(0, len(perm), batch_size):
        idx = perm[start:start + batch_size]
        # Small random shifts make the judge robust to slightly off-centre generated digits.
        x = x_train[idx].view(-1, 1, 28, 28)
        dx, dy = torch.randint(-2, 3, (2,)).tolist()
        x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
        loss = F.cross_entropy(net(x), y_train[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()


def test(net, x_test, y_test):
    """Accuracy on the full test set."""
    net.eval()
    probs, _ = classify(net, x_test)
    return float((probs.argmax(1) == y_test.cpu().numpy()).mean())


def main(argv=None):
    args = build_parser().parse_args(argv)
    seed_everything(args.seed)
    device = pick_device(args.device)
    data = load_mnist(device=device)
    if args.stats_only:
        net = load_classifier(device)
        save_reference_stats(net, data.x_test)
        write_shared(SHARED_PATH, shared_data(net, data.x_test, data.y_test))
        write_lab(LAB_PATH, lab_data(data.x_train, data.y_train))
        print(f"saved {REFERENCE_STATS_PATH}, {SHARED_PATH} and {LAB_PATH}")
        return
    net = LeNet().to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    steps = args.epochs * math.ceil(len(data.x_train) / args.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=steps)
    began = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        train(net, data.x_train, data.y_train, optimizer, scheduler, args.batch_size)
        acc = test(net, data.x_test, data.y_test)
        print(f"epoch {epoch}/{args.epochs}  test accuracy {acc:.4f}  {time.perf_counter() - began:.0f}s")
    save_classifier(net)
    info = {"test_accuracy": acc, "epochs": args.epochs, "seed": args.seed,
            "parameters": sum(p.numel() for p in net.parameters())}
    CLASSIFIER_PATH.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    save_reference_stats(net, data.x_test)
    write_shared(SHARED_PATH, shared_data(net, data.x_test, data.y_test))
    write_lab(LAB_PATH, lab_data(data.x_train, data.y_train))
    print(f"saved {CLASSIFIER_PATH} ({info['parameters']} parameters, test accuracy {acc:.4f})")


if __name__ == "__main__":
    try:
        main()
    except UserError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
