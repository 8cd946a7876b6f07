"""checks/test_features.py — `dath features` against the forward of `dath step`.

`dath step --no-augment --no-dropout` runs the model's forward without dropout on the
centre crops and dumps, beside h and y, the fused features f and each stream's fc7
(before its ReLU) of that forward (host/cmd_step.c, net.h's net_fused / net_fc7).
`dath features` must give, for the same images:
  - the default (fused): f, bit for bit when its batch is the whole list (the same
    GEMMs on the same rows);
  - --stream pam / cam: ReLU(fc7.pam) / ReLU(fc7.cam), bit for bit;
  - --batch 2 on the list with a bad image among them: the good rows' f within 1e-6 of
    max|f| (other GEMM blockings), the bad one named in OUT.skipped.txt, --labels their
    labels;
  - --init A (a torchvision AlexNet layout, random weights written here with checks/st.py):
    the f of `dath init --variant dath-n --init A`'s forward, bit for bit, which is ReLU of
    AlexNet's fc7 (DeCAF7): f = ReLU(fc7.plain) of that dump, non-negative;
  - errors: --stream naming a stream the model lacks, both --model and --init.
Skips (exit 77) when numpy is missing or ./dath (or $DATH) is not built.
"""
import os
import struct
import subprocess
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
DATH = os.environ.get("DATH") or os.path.join(os.path.dirname(HERE), "dath")
try:
    import numpy as np
except ImportError:
    print("SKIP: numpy is not importable by", sys.executable)
    sys.exit(77)
if not os.access(DATH, os.X_OK):
    print("SKIP: ./dath is not built (run make)")
    sys.exit(77)
sys.path.insert(0, HERE)
import st  # noqa: E402

S, K, C = 64, 16, 3
failures = 0


def check(name, cond, detail=""):
    global failures
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else "  " + str(detail)[:1500]))
    if not cond:
        failures += 1


def run(*args, want=0):
    p = subprocess.run([DATH, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if want is not None and p.returncode != want:
        print(f"FAIL dath {' '.join(args[:1])} exited {p.returncode} (wanted {want}):\n{p.stderr}")
        sys.exit(1)
    return p


def png(path, img):
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def rel_max(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


with tempfile.TemporaryDirectory(prefix="dath-features-") as tmp:
    P = lambda name: os.path.join(tmp, name)  # noqa: E731
    rng = np.random.default_rng(11)
    lines = []
    for i, (h, w) in enumerate([(80, 100), (73, 73), (120, 90), (64, 64), (100, 75)]):
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) * 127 // (w + h))], -1)
        img = np.clip(img + rng.integers(-40, 40, size=img.shape), 0, 255).astype(np.uint8)
        png(P(f"i{i}.png"), img)
        lines.append(f"i{i}.png " + " ".join(map(str, rng.integers(0, 2, C))))
    with open(P("l.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(P("bad.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\nbroken")
    with open(P("lb.txt"), "w") as f:
        f.write("\n".join(lines[:2] + ["bad.png 1 0 1"] + lines[2:]) + "\n")
    n = len(lines)

    # a two-stream model (pam, cam), its step dump
    m = P("m.safetensors")
    run("init", "--variant", "dath", "--bits", str(K), "--classes", str(C), "--input-size", str(S), "--seed", "4",
        "--out", m)
    run("step", "--model", m, "--list", P("l.txt"), "--root", tmp, "--no-augment", "--no-dropout", "--device", "cpu",
        "--dump", P("d.st"))
    t, _ = st.read(P("d.st"))
    f_ref, pam, cam = np.array(t["f"]), np.array(t["fc7.pam"]), np.array(t["fc7.cam"])
    check("dath step dumps f [B, 4096] = ReLU(fc7.pam) + ReLU(fc7.cam) of its forward",
          f_ref.shape == (n, 4096) and np.array_equal(f_ref, np.maximum(pam, 0) + np.maximum(cam, 0)))
    check("the features are not trivial (f varies between images)", np.abs(f_ref[0] - f_ref[1]).max() > 0)

    run("features", "--model", m, "--list", P("l.txt"), "--root", tmp, "--device", "cpu", "--out", P("f.npy"))
    f = np.load(P("f.npy"))
    check(f"dath features: float32 [{n}, 4096], the fused f of the step's forward bit for bit",
          f.dtype == np.float32 and f.shape == (n, 4096) and np.array_equal(f, f_ref),
          f"{f.dtype} {f.shape} max |diff| {np.abs(f - f_ref).max() if f.shape == f_ref.shape else '-'}")
    for s, ref in (("pam", pam), ("cam", cam)):
        run("features", "--model", m, "--list", P("l.txt"), "--root", tmp, "--device", "cpu", "--stream", s, "--out",
            P(f"{s}.npy"))
        g = np.load(P(f"{s}.npy"))
        check(f"--stream {s}: ReLU(fc7.{s}) of the step's forward, bit for bit",
              np.array_equal(g, np.maximum(ref, 0)))

    run("features", "--model", m, "--list", P("lb.txt"), "--root", tmp, "--device", "cpu", "--batch", "2",
        "--out", P("fb.npy"), "--labels", P("lab.npy"))
    fb, lab = np.load(P("fb.npy")), np.load(P("lab.npy"))
    with open(P("fb.npy.skipped.txt")) as fh:
        skipped = fh.read()
    want_lab = np.array([[int(v) for v in ln.split()[1:]] for ln in lines], np.uint8)
    r = rel_max(fb, f_ref) if fb.shape == f_ref.shape else float("inf")
    check(f"--batch 2 on a list with a bad image: the good rows' features within 1e-6 of max|f| (measured {r:.1e}), "
          "their labels, the bad one in OUT.skipped.txt",
          r <= 1e-6 and np.array_equal(lab, want_lab) and skipped == "3 bad.png\n",
          f"{fb.shape} {lab.tolist()} {skipped!r}")

    # --init: a torchvision AlexNet layout (random weights), DeCAF7
    shapes = {"features.0": (64, 3, 11, 11), "features.3": (192, 64, 5, 5), "features.6": (384, 192, 3, 3),
              "features.8": (256, 384, 3, 3), "features.10": (256, 256, 3, 3), "classifier.1": (4096, 9216),
              "classifier.4": (4096, 4096), "classifier.6": (1000, 4096)}
    alex = {}
    for k, shp in shapes.items():
        fan_in = int(np.prod(shp[1:]))
        alex[k + ".weight"] = (rng.standard_normal(shp, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in)))
        alex[k + ".bias"] = (rng.standard_normal(shp[0], dtype=np.float32) * np.float32(0.01))
    st.write(P("alexnet.st"), alex, {"format": "torchvision-alexnet", "source": "checks/test_features.py (random)"})
    del alex
    run("features", "--init", P("alexnet.st"), "--input-size", str(S), "--list", P("l.txt"), "--root", tmp,
        "--device", "cpu", "--out", P("decaf.npy"))
    mn = P("n.safetensors")
    run("init", "--variant", "dath-n", "--bits", "8", "--classes", str(C), "--input-size", str(S), "--init",
        P("alexnet.st"), "--out", mn)
    run("step", "--model", mn, "--list", P("l.txt"), "--root", tmp, "--no-augment", "--no-dropout", "--device", "cpu",
        "--dump", P("dn.st"))
    tn, _ = st.read(P("dn.st"))
    decaf = np.load(P("decaf.npy"))
    check("--init A: the f of dath init --variant dath-n --init A's forward, bit for bit",
          np.array_equal(decaf, np.array(tn["f"])), f"max |diff| {np.abs(decaf - np.array(tn['f'])).max()}")
    check("--init A: f = ReLU(AlexNet's fc7) (DeCAF7): equal to ReLU(fc7.plain), non-negative, not all zero",
          np.array_equal(decaf, np.maximum(np.array(tn["fc7.plain"]), 0)) and decaf.min() >= 0 and decaf.max() > 0)
    os.remove(P("alexnet.st"))

    e = run("features", "--model", m, "--list", P("l.txt"), "--root", tmp, "--stream", "plain", "--out",
            P("x.npy"), want=2).stderr
    check("--stream plain on dath: refused, naming its streams", "pam and cam" in e, e)
    e = run("features", "--model", m, "--init", m, "--list", P("l.txt"), "--out", P("x.npy"), want=2).stderr
    check("--model and --init together: a usage error", "one of them" in e, e)

print(f"{failures} failed")
sys.exit(1 if failures else 0)
