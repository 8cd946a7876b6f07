"""checks/test_encode_roundtrip.py — `dath encode` against `dath step` on the same images.

A fresh dath-n model (12 bits, so the second byte has 4 padding bits; input 64), six
PNG images of different sizes, and a list for encoding that also holds an undecodable
file and a missing one. Checks:
  - codes.npy read by numpy: uint8, shape (6, 2); np.unpackbits(codes, axis=1)[:, :12]
    equals (h >= 0) of `dath step --no-augment --no-dropout --dump` for the same images
    (rows where some |h| < 1e-6 are compared on the other bits only); padding bits zero;
  - labels.npy holds the encoded rows' labels; codes.npy.skipped.txt names the two
    left-out lines ("LINE PATH");
  - `dath eval` on the files, and `dath eval --model` on the lists, print the same MAP.
Skips (exit 77) with a message when numpy is missing or ./dath (or $DATH) is not built.
"""
import os
import struct
import subprocess
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
DATH = os.environ.get("DATH") or os.path.join(os.path.dirname(HERE), "dath")  # $DATH: another build
K, C, S = 12, 3, 64
H_EPS = 1e-6

try:
    import numpy as np
except ImportError:
    print("SKIP: numpy is not importable by", sys.executable)
    sys.exit(77)
if not os.access(DATH, os.X_OK):
    print("SKIP: ./dath is not built (run make)")
    sys.exit(77)
sys.path.insert(0, HERE)
import st  # noqa: E402  (checks/st.py, safetensors on numpy alone)

failures = 0


def check(name, cond, detail=""):
    global failures
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else "  " + detail))
    if not cond:
        failures += 1


def png(path, img):
    """Writes an RGB uint8 image [H, W, 3] as a PNG (zlib only)."""
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw)))
        f.write(chunk(b"IEND", b""))


def run(*args):
    p = subprocess.run([DATH, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        print(f"FAIL dath {args[0]} exited {p.returncode}:\n{p.stderr}")
        sys.exit(1)
    return p.stdout


with tempfile.TemporaryDirectory(prefix="dath-roundtrip-") as tmp:
    rng = np.random.default_rng(7)
    sizes = [(80, 100), (73, 73), (120, 90), (64, 64), (100, 75), (90, 140)]
    labels = rng.integers(0, 2, size=(len(sizes), C)).astype(np.uint8)
    labels[0] = 0  # an unlabeled image
    good_lines = []
    for i, (h, w) in enumerate(sizes):
        # smooth colour ramps plus noise, so that the crop and resize matter
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) * 127 // (w + h))], -1)
        img = np.clip(img + rng.integers(-40, 40, size=img.shape), 0, 255).astype(np.uint8)
        png(os.path.join(tmp, f"img{i}.png"), img)
        good_lines.append(f"img{i}.png " + " ".join(map(str, labels[i])))
    with open(os.path.join(tmp, "bad.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\nthis is not an image")
    with open(os.path.join(tmp, "good.txt"), "w") as f:
        f.write("\n".join(good_lines) + "\n")
    enc_lines = good_lines[:2] + ["bad.png 1 0 0"] + good_lines[2:3] + ["missing.png 0 1 0"] + good_lines[3:]
    with open(os.path.join(tmp, "enc.txt"), "w") as f:
        f.write("\n".join(enc_lines) + "\n")

    model = os.path.join(tmp, "m.safetensors")
    dump = os.path.join(tmp, "dump.safetensors")
    codes_p, labels_p = os.path.join(tmp, "codes.npy"), os.path.join(tmp, "labels.npy")
    run("init", "--variant", "dath-n", "--bits", str(K), "--classes", str(C), "--input-size", str(S),
        "--seed", "3", "--out", model)
    run("step", "--model", model, "--list", os.path.join(tmp, "good.txt"), "--root", tmp,
        "--no-augment", "--no-dropout", "--device", "cpu", "--dump", dump)
    run("encode", "--model", model, "--list", os.path.join(tmp, "enc.txt"), "--root", tmp,
        "--batch", "4", "--device", "cpu", "--out", codes_p, "--labels", labels_p)

    tensors, _ = st.read(dump)
    h = np.array(tensors["h"])
    codes = np.load(codes_p)
    check("codes.npy: uint8 of shape (6, 2)", codes.dtype == np.uint8 and codes.shape == (6, 2),
          f"{codes.dtype} {codes.shape}")
    if codes.shape == (6, 2):
        bits = np.unpackbits(codes, axis=1)
        sure = np.abs(h) >= H_EPS
        check(f"h from dath step is not ~0 (at least half the bits have |h| >= {H_EPS})",
              sure.mean() >= 0.5, f"{int(sure.sum())} of {h.size}: is the model's initialisation right?")
        same = (bits[:, :K] == (h >= 0)) | ~sure
        check(f"unpackbits(codes)[:, :{K}] == (h >= 0) from dath step ({int(sure.sum())} of {h.size} bits "
              f"with |h| >= {H_EPS})", bool(same.all()), f"differs at {np.argwhere(~same)[:5].tolist()}")
        check("padding bits are zero", not bits[:, K:].any())
    lab = np.load(labels_p)
    check("labels.npy: the encoded rows' labels", lab.dtype == np.uint8 and np.array_equal(lab, labels),
          f"{lab.tolist()}")
    with open(codes_p + ".skipped.txt") as f:
        skipped = f.read()
    check("codes.npy.skipped.txt names the left-out lines", skipped == "3 bad.png\n5 missing.png\n",
          repr(skipped))

    out_files = run("eval", "--query", codes_p, "--query-labels", labels_p, "--db", codes_p,
                    "--db-labels", labels_p, "--topk", "0")
    out_model = run("eval", "--model", model, "--query-list", os.path.join(tmp, "good.txt"),
                    "--db-list", os.path.join(tmp, "enc.txt"), "--root", tmp, "--device", "cpu",
                    "--topk", "0")
    line = [ln for ln in out_files.splitlines() if ln.startswith("MAP@all: ")]
    check("dath eval on the files prints MAP@all", len(line) == 1, out_files)
    check("dath eval --model gives the same results as on the encoded files", out_files == out_model,
          f"\n{out_files}\n{out_model}")

print(f"{failures} failed")
sys.exit(1 if failures else 0)
