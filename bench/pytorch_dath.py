#!/usr/bin/env python3
"""bench/pytorch_dath.py — DATH as DESIGN.md states it, written in PyTorch.

Two uses:
  * the peer that checks/test_torch_step.py compares `dath step` with (fp32, CPU,
    Debian's torch 1.13 is enough);
  * the PyTorch side of the side-by-side benchmarks on a GPU (a recent torch + CUDA).

Import:
    model = build_model("dath", bits=64, classes=21)     # keys exactly as dath's files
    meta = load_dath_weights(model, "m.safetensors")     # a plain load_state_dict
    h, y = model(x)                                      # x [B,3,S,S] normalised
    j1, j2, j3, total, ntrip = losses(h, y, labels, multi, 5.0, 1.0, 0.01, 1.0)

Script (benchmark):
    python3 bench/pytorch_dath.py --variant dath --bits 64 --classes 21 --batch 128 \
        --input-size 224 --steps 50 --warmup 10 --precision tf32 --device cuda --json
  trains on random uint8 images (the cached R×R unit, R = round(256·S/224)) held in
  device memory, as dath's decoded set is after its first epoch, and transformed there
  as dath does (random S×S crop, random horizontal flip, ImageNet normalisation), at
  the same precision (tf32: TF32 matmuls and cuDNN convolutions; bf16: autocast to
  bf16, fp32 master weights; fp32: TF32 off); prints ms/step and images/s.
    --encode-latency   ms per image at batch 1 and at batch 128 (eval mode, centre crop;
                       timed from the pinned uint8 batch to the codes on the host);
                       --batches 1,128 chooses the batches
    --epoch N          one warm epoch of N images, as `dath train --data-on-device` runs
                       its second epoch: the decoded set (random uint8, N × R×R×3) held in
                       device memory, a permutation of it in batches of --batch (the last
                       partial one kept), each batch gathered, cropped, flipped and
                       normalised on the device, then forward, backward, RMSProp; timed
                       after --warmup untimed steps; prints epoch_s and ms_per_step
    --losses-from M    loads M (a dath model file), dropout off, prints the losses of the
                       first --steps training steps (RMSProp between them), one JSON line
                       a step; the batch is --inputs D.safetensors (the `input` and
                       `labels` of a `dath step --dump`) when given, else random images
                       from --seed through the centre-crop transform.

Model (DESIGN.md §1): each stream is a torchvision-layout AlexNet trunk; the attention
module sits between conv5 (+ReLU) and the last max-pool; adaptive average pool to 6×6;
classifier.0 dropout, .1 fc6 + ReLU, .3 dropout, .4 fc7. Fusion f = Σ_streams ReLU(fc7);
h = tanh(hash(f)); y = cls(h). Dropout masks are torch's own: they cannot match dath's
counter-based masks bit for bit, so comparisons run with dropout off (model.eval()).
"""
import argparse
import json
import os
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "checks"))
import st  # noqa: E402  (checks/st.py: safetensors on numpy)

VARIANTS = {  # variant -> [(stream prefix, attention)]
    "dath": [("pam", "pam"), ("cam", "cam")],
    "dath-s": [("pam", "pam")],
    "dath-c": [("cam", "cam")],
    "dath-n": [("plain", None)],
    "dath-1": [("trunk", "both")],
}
HIDDEN = 4096      # fc6/fc7 width
C5 = 256           # conv5 channels
CQ = C5 // 8       # PAM query/key channels
POOL = 6           # adaptive average pool side
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
J2_EPS = 1e-7


class PAM(nn.Module):
    """Position attention (DANet): out = γ·(V Aᵀ) + X, A = softmax_rows(Qᵀ K)."""

    def __init__(self, c=C5, cq=CQ):
        super().__init__()
        self.query = nn.Conv2d(c, cq, 1)
        self.key = nn.Conv2d(c, cq, 1)
        self.value = nn.Conv2d(c, c, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def attend(self, x):                                   # x [B,C,H,W] -> o [B,C,H,W]
        b, c, hh, ww = x.shape
        n = hh * ww
        q = self.query(x).reshape(b, -1, n)                # [B,Cq,N]
        k = self.key(x).reshape(b, -1, n)                  # [B,Cq,N]
        v = self.value(x).reshape(b, c, n)                 # [B,C,N]
        a = torch.softmax(torch.bmm(q.transpose(1, 2), k), dim=-1)   # [B,N,N]
        return torch.bmm(v, a.transpose(1, 2)).reshape(b, c, hh, ww)

    def forward(self, x):
        return self.gamma * self.attend(x) + x


class CAM(nn.Module):
    """Channel attention (DANet): out = γ·(A X) + X, A = softmax_rows(rowmax(E) − E), E = X Xᵀ."""

    def __init__(self):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def attend(self, x):                                   # x [B,C,H,W] -> o [B,C,H,W]
        b, c, hh, ww = x.shape
        xf = x.reshape(b, c, hh * ww)                      # [B,C,N]
        e = torch.bmm(xf, xf.transpose(1, 2))              # [B,C,C]
        e = e.max(dim=-1, keepdim=True)[0].expand_as(e) - e
        a = torch.softmax(e, dim=-1)                       # [B,C,C]
        return torch.bmm(a, xf).reshape(b, c, hh, ww)

    def forward(self, x):
        return self.gamma * self.attend(x) + x


def alexnet_features():
    """torchvision's AlexNet `features` up to conv5's ReLU (indices 0..11; the last
    max-pool, index 12, is applied after the attention module)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True),
    )


class Stream(nn.Module):
    """One AlexNet trunk with its attention; returns fc7 before its ReLU."""

    def __init__(self, attn, dropout=0.5):
        super().__init__()
        self.features = alexnet_features()
        self.kind = attn
        if attn == "pam":
            self.attn = PAM()
        elif attn == "cam":
            self.attn = CAM()
        elif attn == "both":   # dath-1: keys <prefix>.pam.* and <prefix>.cam.gamma
            self.pam = PAM()
            self.cam = CAM()
        self.pool = nn.MaxPool2d(3, 2)
        self.avgpool = nn.AdaptiveAvgPool2d((POOL, POOL))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(C5 * POOL * POOL, HIDDEN), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(HIDDEN, HIDDEN),
        )

    def forward(self, x):
        x = self.features(x)                               # [B,256,H5,W5]
        if self.kind in ("pam", "cam"):
            x = self.attn(x)
        elif self.kind == "both":
            x = self.pam(x) + self.cam(x)                  # (γp·o_pam + X) + (γc·o_cam + X)
        x = self.avgpool(self.pool(x))                     # [B,256,6,6]
        return self.classifier(torch.flatten(x, 1))        # [B,4096]


class DATH(nn.Module):
    def __init__(self, variant, bits, classes, dropout=0.5):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant '{variant}' (one of {', '.join(VARIANTS)})")
        self.variant, self.bits, self.classes = variant, bits, classes
        self.prefixes = [p for p, _ in VARIANTS[variant]]
        for prefix, attn in VARIANTS[variant]:
            self.add_module(prefix, Stream(attn, dropout))
        self.hash = nn.Linear(HIDDEN, bits)
        self.cls = nn.Linear(bits, classes)

    def forward(self, x):                                  # x [B,3,S,S] -> h [B,K], y [B,C]
        f = None
        for p in self.prefixes:
            r = F.relu(getattr(self, p)(x))
            f = r if f is None else f + r
        h = torch.tanh(self.hash(f))
        return h, self.cls(h)


def build_model(variant, bits, classes, dropout=0.5, init=True):
    """A fresh model with PyTorch's default initialisation (γ = 0); its state_dict
    keys are dath's safetensors keys. init=False leaves the convolution and linear
    weights uninitialised (torch.empty): for a model that is about to be loaded, it
    saves drawing 115M random numbers."""
    if init:
        return DATH(variant, bits, classes, dropout)
    saved = nn.Conv2d.reset_parameters, nn.Linear.reset_parameters
    nn.Conv2d.reset_parameters = nn.Linear.reset_parameters = lambda self: None
    try:
        return DATH(variant, bits, classes, dropout)
    finally:
        nn.Conv2d.reset_parameters, nn.Linear.reset_parameters = saved


def load_dath_weights(model, path):
    """Loads a dath model or checkpoint (its rmsprop.* tensors are left out) with a
    strict load_state_dict. Returns the file's metadata."""
    tensors, meta = st.read(path)
    want = model.state_dict()
    with warnings.catch_warnings():  # views of the read-only mapped file: only read here
        warnings.simplefilter("ignore", UserWarning)
        sd = {k: torch.from_numpy(v) for k, v in tensors.items() if not k.startswith("rmsprop.")}
    missing = sorted(set(want) - set(sd))
    extra = sorted(set(sd) - set(want))
    if missing or extra:
        raise ValueError(f"{path}: keys differ from a {model.variant} model: "
                         f"missing {missing[:6]}, unexpected {extra[:6]}")
    for k, v in sd.items():
        if tuple(v.shape) != tuple(want[k].shape):
            raise ValueError(f"{path}: '{k}' has shape {list(v.shape)}, the model {list(want[k].shape)}")
    model.load_state_dict(sd, strict=True)
    return meta


def rmsprop_state(path):
    """The rmsprop.<key> tensors of a checkpoint, as {key: tensor}."""
    tensors, _ = st.read(path)
    return {k[len("rmsprop."):]: torch.from_numpy(np.array(v))
            for k, v in tensors.items() if k.startswith("rmsprop.")}


def is_multi_label(labels):
    """DESIGN §2: single-label when every row has exactly one 1 (decided per list)."""
    return not bool(((labels > 0.5).sum(dim=1) == 1).all())


def losses(h, y, labels, multi, margin=5.0, beta=1.0, gamma=0.01, w1=1.0):
    """DESIGN.md §2. h [B,K], y [B,C], labels [B,C] 0/1 float. Computed in fp32 (fp64
    when h is fp64), whatever the autocast precision of h and y.
    Returns (j1, j2, j3, total, ntriplets): 0-d tensors (ntriplets int64), computed
    without a host synchronisation."""
    # the losses in fp32 at least (fp64 stays fp64: the checks' reference runs in it)
    dt = torch.float64 if h.dtype == torch.float64 else torch.float32
    h32, y32, lab = h.to(dt), y.to(dt), labels.to(dt)
    b = h32.shape[0]
    # J1: every (a, p, n), a != p, sim(a,p), !sim(a,n); rows without labels share nothing
    sim = (lab @ lab.t()) > 0.5                                         # [B,B]
    eye = torch.eye(b, dtype=torch.bool, device=h.device)
    pos = sim & ~eye                                                    # [a,p]
    neg = ~sim                                                          # [a,n]
    valid = pos[:, :, None] & neg[:, None, :]                           # [a,p,n]
    ntrip = valid.sum()                                                 # stays on the device
    theta = 0.5 * (h32 @ h32.t())                                       # [B,B]
    x = theta[:, :, None] - theta[:, None, :] - margin                  # [a,p,n]
    terms = torch.where(valid, F.softplus(-x), torch.zeros_like(x))
    j1 = terms.sum() / ntrip.clamp(min=1).to(dt)                        # 0 when none
    # J2
    if multi:
        p = torch.softmax(y32, dim=1).clamp(J2_EPS, 1.0 - J2_EPS)
        j2 = -(lab * torch.log(p) + (1.0 - lab) * torch.log(1.0 - p)).sum(dim=1).mean()
    else:
        j2 = F.cross_entropy(y32, lab.argmax(dim=1))
    # J3
    j3 = (h32.abs() - 1.0).abs().sum(dim=1).mean()
    total = w1 * j1 + beta * j2 + gamma * j3
    return j1, j2, j3, total, ntrip


def make_optimizer(model, lr, wd):
    """DESIGN.md §3: RMSProp with PyTorch's semantics."""
    return torch.optim.RMSprop(model.parameters(), lr=lr, alpha=0.99, eps=1e-8,
                               weight_decay=wd, momentum=0, centered=False)


# ---- the benchmark side ------------------------------------------------------------

def cache_side(s):
    """The cached uint8 unit's side for input size S: round(256·S/224)."""
    return (256 * s + 112) // 224


class Transform:
    """uint8 [B,R,R,3] on the device -> float [B,3,S,S]: crop (random or centre),
    optional horizontal flip, (x/255 − mean)/std."""

    def __init__(self, s, r, device):
        self.s, self.r = s, r
        self.ar = torch.arange(s, device=device)
        self.mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1) * 255.0
        self.inv_std = 1.0 / (torch.tensor(STD, device=device).view(1, 3, 1, 1) * 255.0)

    def __call__(self, img, train, gen=None):
        b, dev = img.shape[0], img.device
        if train:
            cx = torch.randint(0, self.r - self.s + 1, (b,), device=dev, generator=gen)
            cy = torch.randint(0, self.r - self.s + 1, (b,), device=dev, generator=gen)
            flip = torch.randint(0, 2, (b,), device=dev, generator=gen).bool()
        else:
            c = (self.r - self.s) // 2
            cx = torch.full((b,), c, device=dev)
            cy = cx
            flip = torch.zeros(b, dtype=torch.bool, device=dev)
        rows = cy[:, None] + self.ar                                        # [B,S]
        cols = cx[:, None] + torch.where(flip[:, None], self.s - 1 - self.ar, self.ar)
        bi = torch.arange(b, device=dev)[:, None, None]
        x = img[bi, rows[:, :, None], cols[:, None, :]]                     # [B,S,S,3]
        x = x.permute(0, 3, 1, 2).float()
        return (x - self.mean) * self.inv_std


def random_batches(n, b, r, classes, seed, pin):
    """n host batches of random uint8 images [B,R,R,3] and multi-hot labels [B,C]
    (1–3 labels a row, from a fixed generator)."""
    g = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = torch.from_numpy(g.integers(0, 256, size=(b, r, r, 3), dtype=np.uint8))
        lab = np.zeros((b, classes), np.float32)
        for i in range(b):
            lab[i, g.choice(classes, size=min(classes, int(g.integers(1, 4))), replace=False)] = 1
        lab = torch.from_numpy(lab)
        out.append((img.pin_memory() if pin else img, lab.pin_memory() if pin else lab))
    return out


def set_precision(precision, device):
    if device.type == "cuda":
        tf = precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf
        torch.backends.cudnn.allow_tf32 = tf
        torch.backends.cudnn.benchmark = True


def autocast_ctx(precision, device):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return torch.autocast(device_type=device.type, enabled=False)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def maybe_compile(model, want):
    """torch.compile where this torch has it; returns (module, compiled?)."""
    if not want:
        return model, False
    if not hasattr(torch, "compile"):
        print(f"warning: torch {torch.__version__} has no torch.compile; running eager", file=sys.stderr)
        return model, False
    return torch.compile(model), True


def run_train(args, device):
    model = build_model(args.variant, args.bits, args.classes).to(device).train()
    opt = make_optimizer(model, args.lr, args.wd)
    fwd, compiled = maybe_compile(model, args.compile)
    r = cache_side(args.input_size)
    tf = Transform(args.input_size, r, device)
    # the batches live in device memory, as dath's decoded set does after its first epoch
    # (--data-on-device): both sides then time the same work, no host-to-device copies
    pool = [(img.to(device), lab.to(device))
            for img, lab in random_batches(4, args.batch, r, args.classes, args.seed, False)]
    gen = torch.Generator(device=device)
    gen.manual_seed(args.seed)

    def step(i):
        img, lab = pool[i % len(pool)]
        x = tf(img, True, gen)
        with autocast_ctx(args.precision, device):
            h, y = fwd(x)
        _, _, _, total, _ = losses(h, y, lab, True, args.margin, args.beta, args.gamma_loss, 1.0)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        return total

    for i in range(args.warmup):
        try:
            step(i)
        except Exception as e:  # a failing torch.compile falls back to eager
            if not compiled:
                raise
            print(f"warning: torch.compile failed ({type(e).__name__}: {e}); running eager",
                  file=sys.stderr)
            fwd, compiled = model, False
            step(i)
    sync(device)
    t0 = time.perf_counter()
    for i in range(args.steps):
        total = step(args.warmup + i)
    sync(device)
    dt = (time.perf_counter() - t0) / max(args.steps, 1)
    res = {"variant": args.variant, "bits": args.bits, "batch": args.batch,
           "precision": args.precision, "compile": compiled,
           "ms_per_step": round(dt * 1e3, 3), "images_per_s": round(args.batch / dt, 1),
           "device": device_name(device)}
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{args.variant} {args.bits} bits, batch {args.batch}, {args.precision}"
              f"{' compiled' if compiled else ''} on {res['device']}: "
              f"{res['ms_per_step']:.2f} ms/step, {res['images_per_s']:.1f} images/s "
              f"(last loss {float(total):.4f})")


def run_epoch(args, device):
    """A warm epoch of args.epoch images from a device-resident set (see --epoch)."""
    model = build_model(args.variant, args.bits, args.classes).to(device).train()
    opt = make_optimizer(model, args.lr, args.wd)
    fwd, compiled = maybe_compile(model, args.compile)
    r = cache_side(args.input_size)
    tf = Transform(args.input_size, r, device)
    n, b = args.epoch, args.batch
    g = torch.Generator(device="cpu")
    g.manual_seed(args.seed)
    chunks, left = [], n          # the set, made on the device in pieces (host memory stays small)
    while left:
        k = min(left, 1024)
        chunks.append(torch.randint(0, 256, (k, r, r, 3), dtype=torch.uint8, generator=g).to(device))
        left -= k
    images = torch.cat(chunks)                                            # [N,R,R,3]
    del chunks
    labels = (torch.rand(n, args.classes, generator=g) < 2.0 / args.classes).float().to(device)
    gen = torch.Generator(device=device)
    gen.manual_seed(args.seed)

    def step(idx):
        x = tf(images[idx], True, gen)
        with autocast_ctx(args.precision, device):
            h, y = fwd(x)
        _, _, _, total, _ = losses(h, y, labels[idx], True, args.margin, args.beta, args.gamma_loss, 1.0)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        return total

    warm = torch.arange(min(b, n), device=device)
    for i in range(max(args.warmup, 1)):
        try:
            step(warm)
        except Exception as e:  # a failing torch.compile falls back to eager
            if not compiled:
                raise
            print(f"warning: torch.compile failed ({type(e).__name__}: {e}); running eager",
                  file=sys.stderr)
            fwd, compiled = model, False
            step(warm)
    order = torch.randperm(n, generator=g).to(device)
    batches = [order[i:i + b] for i in range(0, n, b)]
    if len(batches) > 1 and len(batches[-1]) == 1:   # dath drops a last batch of one image
        batches.pop()
    sync(device)
    t0 = time.perf_counter()
    for idx in batches:
        total = step(idx)
    sync(device)
    dt = time.perf_counter() - t0
    res = {"variant": args.variant, "bits": args.bits, "batch": b, "images": n,
           "steps": len(batches), "precision": args.precision, "compile": compiled,
           "epoch_s": round(dt, 4), "ms_per_step": round(dt / len(batches) * 1e3, 3),
           "images_per_s": round(sum(len(x) for x in batches) / dt, 1),
           "device": device_name(device)}
    if args.json:
        print(json.dumps(res))
    else:
        print(f"warm epoch of {n} images, {args.variant}, batch {b}, {args.precision}"
              f"{' compiled' if compiled else ''} on {res['device']}: {dt:.2f} s "
              f"({res['ms_per_step']:.2f} ms/step, last loss {float(total):.4f})")


def run_encode(args, device):
    model = build_model(args.variant, args.bits, args.classes).to(device).eval()
    fwd, compiled = maybe_compile(model, args.compile)
    r = cache_side(args.input_size)
    tf = Transform(args.input_size, r, device)
    pin = device.type == "cuda"
    res = {"variant": args.variant, "bits": args.bits, "precision": args.precision,
           "device": device_name(device)}
    for b in args.batches:
        img, _ = random_batches(1, b, r, args.classes, args.seed, pin)[0]

        def encode():
            with torch.no_grad(), autocast_ctx(args.precision, device):
                h, _ = fwd(tf(img.to(device, non_blocking=True), False))
                return (h >= 0).cpu()   # the codes on the host, as dath's encoder returns h

        try:
            for _ in range(max(args.warmup, 1)):
                encode()
        except Exception as e:
            if not compiled:
                raise
            print(f"warning: torch.compile failed ({type(e).__name__}: {e}); running eager",
                  file=sys.stderr)
            fwd, compiled = model, False
            encode()
        sync(device)
        n = max(args.steps, 1)
        t0 = time.perf_counter()
        for _ in range(n):
            encode()
        sync(device)
        res[f"ms_per_image_b{b}"] = round((time.perf_counter() - t0) / n / b * 1e3, 4)
    res["compile"] = compiled
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{args.variant} {args.bits} bits, {args.precision}{' compiled' if compiled else ''} "
              f"on {res['device']}: " + ", ".join(f"{res[f'ms_per_image_b{b}']:.4f} ms/image at batch {b}"
                                                  for b in args.batches))


def run_losses(args, device):
    tensors, meta = st.read(args.losses_from)
    variant = meta.get("variant", args.variant)
    bits = int(meta.get("bits", args.bits))
    classes = int(meta.get("classes", args.classes))
    size = int(meta.get("input_size", args.input_size))
    model = build_model(variant, bits, classes).to(device)
    load_dath_weights(model, args.losses_from)
    model.to(device).eval()                       # dropout off
    opt = make_optimizer(model, args.lr, args.wd)
    if args.inputs:
        d, _ = st.read(args.inputs)
        x = torch.from_numpy(np.array(d["input"])).to(device)
        lab = torch.from_numpy(np.array(d["labels"])).to(device)
    else:
        r = cache_side(size)
        img, lab = random_batches(1, args.batch, r, classes, args.seed, False)[0]
        x = Transform(size, r, device)(img.to(device), False)
        lab = lab.to(device)
    multi = is_multi_label(lab)
    for i in range(args.steps):
        with autocast_ctx(args.precision, device):
            h, y = model(x)
        j1, j2, j3, total, nt = losses(h, y, lab, multi, args.margin, args.beta, args.gamma_loss, 1.0)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        print(json.dumps({"step": i, "j1": float(j1), "j2": float(j2), "j3": float(j3),
                          "total": float(total), "ntriplets": int(nt), "multi": multi}))


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", default="dath", choices=list(VARIANTS))
    ap.add_argument("--bits", type=int, default=64)
    ap.add_argument("--classes", type=int, default=21)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=20, help="timed steps (or loss steps)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model where available")
    ap.add_argument("--json", action="store_true", help="one JSON line of results")
    ap.add_argument("--encode-latency", action="store_true", help="time encoding instead of training")
    ap.add_argument("--batches", default="1,128", help="with --encode-latency: the batches, comma-separated")
    ap.add_argument("--epoch", type=int, metavar="N", help="time one warm epoch of N device-resident images")
    ap.add_argument("--losses-from", metavar="M", help="print the first steps' losses from a dath model")
    ap.add_argument("--inputs", metavar="D", help="with --losses-from: a dath step dump's input/labels")
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--wd", type=float, default=1e-5)
    ap.add_argument("--margin", type=float, default=5.0)
    ap.add_argument("--beta", type=float, default=1.0)
    ap.add_argument("--gamma-loss", type=float, default=0.01, help="γ, the weight of J3")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.input_size < 63:
        ap.error(f"--input-size {args.input_size}: AlexNet's trunk needs at least 63")
    try:
        args.batches = [int(b) for b in args.batches.split(",")]
        assert args.batches and min(args.batches) >= 1
    except (ValueError, AssertionError):
        ap.error(f"--batches '{args.batches}': positive integers, comma-separated")
    if args.epoch is not None and args.epoch < 2:
        ap.error(f"--epoch {args.epoch}: at least 2 images")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: this torch sees no CUDA device")
    torch.manual_seed(args.seed)
    set_precision(args.precision, device)
    if args.losses_from:
        run_losses(args, device)
    elif args.encode_latency:
        run_encode(args, device)
    elif args.epoch is not None:
        run_epoch(args, device)
    else:
        run_train(args, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
