#!/usr/bin/env python3
"""weights/alexnet_to_safetensors.py — torchvision's ImageNet AlexNet as the file that
`dath init --init` takes.

    python3 weights/alexnet_to_safetensors.py alexnet.safetensors
    dath init --variant dath --bits 64 --classes 21 --init alexnet.safetensors --out m.safetensors

NEEDS torch and torchvision (pip install torch torchvision, or Debian's python3-torch
and python3-torchvision), which a dath user may not have: dath itself needs neither.
It DOWNLOADS the weights (torchvision's alexnet(weights=IMAGENET1K_V1), 233 MiB from
download.pytorch.org, cached under ~/.cache/torch), so it needs network access once;
on a machine without it, run it elsewhere and copy the .safetensors file.

The output holds torchvision's own keys and shapes, float32:
    features.{0,3,6,8,10}.{weight,bias}      the five convolutions
    classifier.1.{weight,bias}               fc6 [4096, 9216]
    classifier.4.{weight,bias}               fc7 [4096, 4096]
    classifier.6.{weight,bias}               ImageNet's 1000-way layer (dath ignores it)
and metadata {"format": "torchvision-alexnet", "source": ...}. It is written with the
`safetensors` package when installed, else with checks/st.py (numpy only).

--random writes the same layout from a randomly initialised AlexNet built with
torch.nn alone (no torchvision, no download): a test of the file layout only.
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def alexnet_nn():
    """torchvision's AlexNet layout, built from torch.nn (default initialisation)."""
    import torch.nn as nn

    class AlexNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
                nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
                nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
            self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
            self.classifier = nn.Sequential(
                nn.Dropout(0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
                nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
                nn.Linear(4096, 1000))

    return AlexNet()


def pretrained_state_dict():
    try:
        import torchvision
    except ImportError:
        sys.exit("alexnet_to_safetensors: torchvision is not installed (pip install torchvision, "
                 "or apt-get install python3-torchvision); --random needs only torch")
    try:  # torchvision >= 0.13
        weights = torchvision.models.AlexNet_Weights.IMAGENET1K_V1
        model = torchvision.models.alexnet(weights=weights)
        source = f"torchvision {torchvision.__version__} alexnet {weights}"
    except AttributeError:  # older torchvision
        model = torchvision.models.alexnet(pretrained=True)
        source = f"torchvision {torchvision.__version__} alexnet pretrained=True"
    return model.state_dict(), source


def save(path, tensors, meta):
    try:
        from safetensors.numpy import save_file
    except ImportError:
        sys.path.insert(0, os.path.join(HERE, "..", "checks"))
        import st
        st.write(path, tensors, meta)
        return "checks/st.py"
    tmp = path + ".tmp"
    save_file(tensors, tmp, metadata=meta)
    os.replace(tmp, path)
    return "safetensors"


def main(argv=None):
    ap = argparse.ArgumentParser(description="torchvision AlexNet -> safetensors for `dath init --init`")
    ap.add_argument("out", help="output .safetensors file")
    ap.add_argument("--random", action="store_true",
                    help="randomly initialised AlexNet (torch only, no download): tests the layout")
    ap.add_argument("--seed", type=int, default=0, help="with --random")
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        sys.exit("alexnet_to_safetensors: torch is not installed (pip install torch, or "
                 "apt-get install python3-torch)")
    if args.random:
        torch.manual_seed(args.seed)
        sd, source = alexnet_nn().state_dict(), f"random torch.nn AlexNet, seed {args.seed}"
    else:
        sd, source = pretrained_state_dict()
    keep = ("features.", "classifier.1.", "classifier.4.", "classifier.6.")
    tensors = {k: np.ascontiguousarray(v.detach().cpu().float().numpy())
               for k, v in sd.items() if k.startswith(keep)}
    if "classifier.1.weight" not in tensors or tensors["classifier.1.weight"].shape != (4096, 9216):
        sys.exit("alexnet_to_safetensors: the state_dict is not torchvision's AlexNet layout")
    writer = save(args.out, tensors, {"format": "torchvision-alexnet", "source": source})
    n = sum(t.size for t in tensors.values())
    print(f"wrote {args.out}: {len(tensors)} tensors, {n} floats ({source}; writer {writer})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
