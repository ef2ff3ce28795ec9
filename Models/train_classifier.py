"""Train the small LeNet that judges reconstructions and generated digits (recon_accuracy,
sample_confidence, sample_class_entropy, fid_mnist), and save its weights beside the package.

Run once; the weights (< 1 MB), their test accuracy and the test digits' feature statistics (FID's
reference side) are committed:
    python Models/train_classifier.py [--stats-only]
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F

from latentlab.cli import pick_device, seed_everything
from latentlab.data import load_mnist
from latentlab.metrics import CLASSIFIER_PATH, REFERENCE_STATS_PATH, classify, load_classifier, save_reference_stats
from latentlab.models import LeNet


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4, help="training epochs (default: 4)")
    parser.add_argument("--batch-size", type=int, default=128, help="images per batch (default: 128)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak Adam learning rate (default: 2e-3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    parser.add_argument("--stats-only", action="store_true",
                        help="keep the committed weights; only rewrite the reference statistics (default: off)")
    args = parser.parse_args()

    seed_everything(args.seed)
    device = pick_device(args.device)
    data = load_mnist(device=device)
    if args.stats_only:
        save_reference_stats(load_classifier(device), data.x_test)
        print(f"saved {REFERENCE_STATS_PATH}")
        return
    net = LeNet().to(device)
    steps = args.epochs * math.ceil(len(data.x_train) / args.batch_size)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps)
    began = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        net.train()
        perm = torch.randperm(len(data.x_train), device=device)
        for start in range(0, len(perm), args.batch_size):
            idx = perm[start:start + args.batch_size]
            # Small random shifts make the judge robust to slightly off-centre generated digits.
            x = data.x_train[idx].view(-1, 1, 28, 28)
            dx, dy = torch.randint(-2, 3, (2,)).tolist()
            x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
            loss = F.cross_entropy(net(x), data.y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        net.eval()
        probs, _ = classify(net, data.x_test)
        acc = float((probs.argmax(1) == data.y_test.cpu().numpy()).mean())
        print(f"epoch {epoch}/{args.epochs}  test accuracy {acc:.4f}  {time.perf_counter() - began:.0f}s")
    torch.save({k: v.cpu() for k, v in net.state_dict().items()}, CLASSIFIER_PATH)
    info = {"test_accuracy": acc, "epochs": args.epochs, "seed": args.seed,
            "parameters": sum(p.numel() for p in net.parameters())}
    CLASSIFIER_PATH.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    save_reference_stats(net, data.x_test)
    print(f"saved {CLASSIFIER_PATH} ({info['parameters']} parameters, test accuracy {acc:.4f})")


if __name__ == "__main__":
    main()
