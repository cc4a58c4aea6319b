"""The baseline tlkit must beat: a plain PyTorch fine-tuning loop, as the common tutorials write it.

AdamW (lr 1e-3), one-cycle schedule, RandomResizedCrop + horizontal flip, the whole network trained,
torchvision ImageFolder reading the image files every epoch. The same pretrained backbone as tlkit
(EfficientNet-Lite0, offline weights), the same image size and epochs. No tlkit training code is used:
only ``load_pretrained`` to get the same starting weights.

    python benchmarks/plain_loop.py DATA_DIR --epochs 10 --image-size 128
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torchvision import datasets, transforms


def plain_finetune(data_dir: str | Path, epochs: int = 10, image_size: int = 128, batch_size: int = 32,
                   lr: float = 1e-3, seed: int = 0, model_name: str = "efficientnet_lite0",
                   flip: bool = True) -> dict:
    """Train and evaluate the plain loop; returns accuracy and seconds.

    ``flip=False`` drops the horizontal flip: not the baseline, but it separates what tlkit's recipe
    gains from its augmentation choice and what it gains from the way it trains.
    """
    from tlkit import load_pretrained

    torch.manual_seed(seed)
    start = time.perf_counter()
    data_dir = Path(data_dir)
    mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)  # EfficientNet-Lite's normalisation
    train_tf = transforms.Compose([
        transforms.RandomResizedCrop(image_size), transforms.RandomHorizontalFlip(p=0.5 if flip else 0.0),
        transforms.ToTensor(), transforms.Normalize(mean, std)])
    eval_tf = transforms.Compose([
        transforms.Resize(int(image_size * 1.14)), transforms.CenterCrop(image_size),
        transforms.ToTensor(), transforms.Normalize(mean, std)])
    train_set = datasets.ImageFolder(data_dir / "train", train_tf)
    eval_dir = data_dir / "test" if (data_dir / "test").is_dir() else data_dir / "val"
    eval_set = datasets.ImageFolder(eval_dir, eval_tf)
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=batch_size, shuffle=True)
    eval_loader = torch.utils.data.DataLoader(eval_set, batch_size=64)

    model = load_pretrained(model_name, num_classes=len(train_set.classes))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, epochs=epochs,
                                                    steps_per_epoch=len(train_loader))
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        for images, labels in train_loader:
            loss = loss_fn(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for images, labels in eval_loader:
            correct += (model(images).argmax(1) == labels).sum().item()
    return {"accuracy": correct / len(eval_set), "seconds": round(time.perf_counter() - start, 2),
            "n_train": len(train_set), "n_eval": len(eval_set)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data_dir")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(plain_finetune(args.data_dir, args.epochs, args.image_size, seed=args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
