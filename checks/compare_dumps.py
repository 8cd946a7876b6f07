#!/usr/bin/env python3
"""checks/compare_dumps.py — the whole-model comparisons of checks/gpu (numpy only).

  compare_dumps.py A.safetensors B.safetensors [--lr LR] [--alpha ALPHA] [--precision P]
      Two `dath step --dump` files, A the CUDA run (its GEMMs at precision P: fp32, the
      default, tf32 or bf16) and B the CPU reference (fp32): every tensor of B must be in
      A with the same shape; each tensor is judged by the first row of tolerances(P)
      whose pattern matches its name. Prints one line per tensor (worst element, its
      tolerance, relative L2 error and its limit) and exits 1 when any tensor fails.
  compare_dumps.py losses CUDA_LOG CPU_LOG [--steps N] [--precision P]
      Two `dath train` step logs (JSON lines or CSV), the CUDA run's GEMMs at precision
      P: the first N steps' losses must track (train_tolerance(P), per step).
  compare_dumps.py codes CUDA.npy CPU.npy REF_DUMP.safetensors [--bits K]
      Two `dath encode` code files: identical bits, except where |h| of the reference
      step dump (same model, same images, centre crop, no dropout) is within H_ZERO of 0.
  compare_dumps.py images DIR N C [--side PX] [--seed S]
      Writes N generated RGB PNG images with C-class multi-label lists (DIR/list.txt)
      for the checks and benchmarks; no other tool needed.
  compare_dumps.py steptime LOG [--skip K] [--batch B]
      Prints "ms_per_step images_per_s" (medians over the log's steps after the first K).

Exit status: 0 pass, 1 failure, 2 usage or unreadable input.
"""
import fnmatch
import json
import math
import os
import struct
import sys
import zlib

import numpy as np

# dbk: a gradient that is 0 in exact arithmetic (both precisions' rows below).
KEY_BIAS = ("grad.*.attn.key.bias", math.inf, 0.0, 0.0, math.inf,
            "dbk = sum of dk over every pixel is 0 in exact arithmetic (a row's softmax ignores "
            "a shift, and bk shifts row i of e by q_i'bk): both sides' values are rounding noise "
            "(~1e-12 in fp32 on the CPU; ~1e-8 at bf16, where dk is rounded before its sum), "
            "relative to sum|dk|, which the dump does not hold: only finite here (the CUDA op's "
            "check bounds it by sum|dk|, checks/test_attention_cuda.c); param.*.attn.key.bias "
            "judges its step")

# dq, dk: through the softmax backward de = a*(da - sum a*da), which cancels where a row of
# da is nearly constant: at DATH's initialisation the map a is near-uniform and v's bias adds
# the same to every column of da, so de keeps da's rounding error (~u*|da|) against a far
# smaller |de|. Both sides' values carry it, and how far it grows depends on the weights
# and the batch (on the emulator at B 4, 64^2, gamma 0.7 and 0.4: relative L2 5e-3 to
# 1.5e-2 at fp32, 0.14 to 0.23 at tf32, 0.22 at bf16), so the dump can only catch a wrong or
# missing term, an error of order 1: relative L2 0.5, elements within the tensor's largest
# value. The kernel check bands them through the chain (checks/test_attention_cuda.c).
def attn_qk(rel_l2):
    why = ("dq = k*de' and dk = q*de come from the softmax backward de = a*(da - sum a*da), "
           "which cancels where a row of da is nearly constant (a near-uniform map and v's bias "
           "at initialisation): da's rounding grows by |da|/|de|, by how much depends on the "
           "weights and the batch (fp32 5e-3 to 1.5e-2, tf32 0.14 to 0.23 relative L2 on the "
           "emulator): only a wrong or missing term is caught here, the kernel check bands them")
    return [(pat, 0.0, 1.0, 0.0, rel_l2, why) for pat in ("grad.*.attn.query.weight", "grad.*.attn.key.weight")]

# ---- tolerances: |a - b| <= atol + atol_frac*max|b| + rtol*|b|, and ||a-b||/||b|| <= rel_l2
# (pattern, atol, atol_frac, rtol, rel_l2, why): those of an fp32 CUDA run. tolerances()
# gives those of a tf32 or bf16 one.
TOLERANCES = [
    ("input", 0.0, 0.0, 0.0, 0.0,
     "the CUDA transform rounds each operation as the reference does: same bits"),
    ("labels", 0.0, 0.0, 0.0, 0.0, "copied from the list"),
    ("triplets", 0.0, 0.0, 0.0, 0.0, "an integer count that depends on the labels only"),
    ("h", 0.0, 1e-4, 1e-3, 1e-4,
     "fp32 through 8 GEMM layers summed in other orders: ~1e-6 a layer, 1e-4 leaves margin"),
    ("y", 0.0, 1e-4, 1e-3, 1e-4, "as h, one GEMM more"),
    ("loss.*", 1e-6, 0.0, 1e-4, 1e-4, "means over the batch of values as accurate as h and y"),
    KEY_BIAS,
    *attn_qk(0.5),
    ("grad.*", 0.0, 1e-3, 1e-2, 1e-3,
     "fp32 backward through 8 layers, weight gradients summed over every pixel of the batch; "
     "ReLU masks and max-pool argmaxes may differ where values tie near 0, which moves "
     "single elements: element-wise loose, the relative L2 error tight"),
    ("param.*", None, 0.0, 0.0, 1e-4,
     "one RMSProp step from v = 0 moves every parameter by about lr/sqrt(1-alpha) whatever the "
     "gradient's size, so a gradient that is rounding noise on one side can flip the sign of "
     "that move: atol = 2.5*lr/sqrt(1-alpha); a wrong update moves every parameter, which the relative L2 error catches"),
    ("*", 0.0, 1e-4, 1e-3, 1e-4, "any other tensor"),
]
PRECISIONS = {"fp32": 0.0, "tf32": 2.0 ** -11, "bf16": 2.0 ** -8}   # unit roundoff u


def tolerances(precision):
    """The tolerance rows for a CUDA dump whose GEMMs ran at `precision`: TOLERANCES at
    fp32; at tf32/bf16 (u = 2^-11, 2^-8: the operands' unit roundoff) the rows below, in
    units of u, each with its reason. At tf32/bf16 a param.* row's rel_l2 field is the
    largest fraction of flipped updates (a difference over lr/sqrt(1-alpha)), not a
    relative L2 error. Calibrated with `checks/device --dry-run` (stage c) on the emulator's
    tensor-core model (emu/README.md; the README's Tests section has the numbers)."""
    u = PRECISIONS[precision]
    if u == 0.0:
        return TOLERANCES
    ru = math.sqrt(u)
    return [
        TOLERANCES[0], TOLERANCES[1], TOLERANCES[2],
        ("h", 0.0, 32 * u, 0.0, 16 * u,
         "8 GEMM layers (conv1-5, the attention, fc6, fc7, hash), each adding <= 2u relative "
         "in L2 (random conversion errors ~0.6u; a common shrink ~1.44u when the conversion "
         "truncates): <= 16u; single elements up to twice that"),
        ("y", 0.0, 32 * u, 0.0, 16 * u, "as h (the classifier adds a 16-term GEMM)"),
        ("loss.*", 1e-6, 0.0, 16 * u, 16 * u,
         "means over the batch of functions of h and y that move no more than h and y do "
         "(J2's gradient in y is p - l, J3's in h is +-1, J1's goes through h'h/2 with "
         "|h| < 1): <= 16u"),
        ("grad.*.attn.gamma", math.inf, 0.0, 0.0, math.inf,
         "dgamma = sum over B*C*N of dout*o: with gamma = 0 it cancels to far below its "
         "terms, and its error is relative to sum|dout*o|, which the dump does not hold: "
         "only finite here; param.*.attn.gamma judges its step"),
        KEY_BIAS,
        *attn_qk(max(0.5, 10 * ru)),
        ("grad.*", 0.0, 2.0, 0.0, 10 * ru,
         "ReLU masks and max-pool argmaxes flip where a value is within its error (~3u) of "
         "the decision: a fraction ~0.8*3u of each of 8 layers' units, and a flipped unit "
         "moves its whole row of a weight gradient, each element by up to the sum of its "
         "flipped terms (element-wise only within twice the tensor's largest value): the "
         "relative L2 error grows like sqrt(8*0.8*3u) = 4.4*sqrt(u); limit 10*sqrt(u)"),
        ("param.*.attn.gamma", None, 0.0, 0.0, 1.0,
         "its gradient cancels (grad.*.attn.gamma), so its step may go either way: "
         "within 2.5*lr/sqrt(1-alpha), any flip"),
        ("param.*", None, 0.0, 0.0, 5 * ru,
         "one RMSProp step from v = 0 moves each parameter by ~lr/sqrt(1-alpha) along "
         "-sign(g) whatever |g|: a parameter differs (by up to twice that: atol "
         "2.5*lr/sqrt(1-alpha)) only where g's sign differs, which is where |g| is below its "
         "error; flips (a difference over lr/sqrt(1-alpha)) are <= 0.4 x grad's relative "
         "error: limit 5*sqrt(u) of the elements (the relative L2 error would be lr over the "
         "weights' scale)"),
        ("*", 0.0, 32 * u, 0.0, 16 * u, "any other tensor: as h"),
    ]


# Training: the per-step total loss of the CUDA run against the CPU run (same seed, data,
# crops and dropout masks): only fp32 rounding differs, and it compounds over the steps.
# No GPU run has measured that spread yet: 2e-3 relative is a first bound (one step's
# loss agrees to ~1e-5); revisit it with the worst |diff|/tol the first runs print.
TRAIN_RTOL = 2e-3
TRAIN_ATOL = 1e-4


def train_tolerance(precision):
    """(atol, rtol) for `compare_dumps losses` at the CUDA run's precision. fp32: TRAIN_ATOL
    + TRAIN_RTOL|ref|. tf32/bf16: the first step's losses differ as loss.* does in a step
    dump (<= 16u). Later steps start from parameters that differ only where a gradient's
    sign flipped (RMSProp's first steps move by ~lr/sqrt(1-alpha) along -sign(g)), i.e.
    where |g| is below its error, so the loss moves by sum |g|*2*lr/sqrt(1-alpha) over
    those: second order, far below the first step's difference at DATH's learning rates;
    each later step's own rounding adds up to 16u again: 32u for a few steps, on top of
    the fp32 bound."""
    u = PRECISIONS[precision]
    return TRAIN_ATOL, TRAIN_RTOL + 32 * u
# Codes: a bit may differ only where the reference's |h| is this close to 0 (h is fp32
# on both sides; its error is ~1e-6 of the hash layer's 4096-term sums).
H_ZERO = 1e-4

DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64,
          "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path):
    """Returns ({name: array}, metadata) of a safetensors file. The arrays are read-only
    views of a memory map of the file (a step dump is ~1 GB: nothing is copied until
    judged)."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{path}: too short for a safetensors file")
        (hlen,) = struct.unpack("<Q", head)
        size = os.fstat(f.fileno()).st_size
        if 8 + hlen > size:
            raise ValueError(f"{path}: header length {hlen} past the end of the file")
        header = json.loads(f.read(hlen).decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = (np.memmap(path, dtype=np.uint8, mode="r", offset=8 + hlen)
            if size > 8 + hlen else np.zeros(0, dtype=np.uint8))
    out = {}
    for name, info in header.items():
        dt = info["dtype"]
        b, e = info["data_offsets"]
        shape = tuple(info["shape"])
        if not 0 <= b <= e <= data.size:
            raise ValueError(f"{path}: tensor {name}: bytes [{b}, {e}) outside the data "
                             f"({data.size} bytes)")
        if dt == "BF16":
            u = data[b:e].view(np.uint16).astype(np.uint32) << 16
            arr = u.view(np.float32)
        elif dt in DTYPES:
            arr = data[b:e].view(DTYPES[dt])
        else:
            raise ValueError(f"{path}: tensor {name}: dtype {dt} not understood")
        out[name] = arr.reshape(shape)
    return out, meta


def tolerance_for(name, rows=TOLERANCES):
    for row in rows:
        if fnmatch.fnmatchcase(name, row[0]):
            return row
    return rows[-1]


CHUNK = 1 << 20   # elements judged at a time (keeps the float64 temporaries small)


def judge(name, a, b, atol, atol_frac, rtol, rel_l2, flip_at=None):
    """Returns (ok, worst_err, tol_at_worst, index, rel_l2_err, flip_fraction). With flip_at
    (param.* at tf32/bf16), rel_l2 bounds the fraction of elements differing by more than
    flip_at instead of the relative L2 error; flip_fraction is None otherwise."""
    a = np.asarray(a).ravel()
    b = np.asarray(b).ravel()
    n = a.size
    if n == 0:
        return True, 0.0, 0.0, 0, 0.0, (0.0 if flip_at is not None else None)
    mx = 0.0
    for o in range(0, n, CHUNK):
        mx = max(mx, float(np.max(np.abs(b[o:o + CHUNK].astype(np.float64)))))
    worst, wi, werr, wtol = -math.inf, 0, 0.0, 0.0
    d2 = b2 = 0.0
    flips = 0
    for o in range(0, n, CHUNK):
        ac = a[o:o + CHUNK].astype(np.float64)
        bc = b[o:o + CHUNK].astype(np.float64)
        err = np.abs(ac - bc)
        tol = atol + atol_frac * mx + rtol * np.abs(bc)
        excess = np.where(np.isnan(err), np.inf, err - tol)
        i = int(np.argmax(excess))
        if excess[i] > worst:
            worst, wi, werr, wtol = float(excess[i]), o + i, float(err[i]), float(tol[i])
        d2 += float(np.sum(np.nan_to_num(ac - bc, nan=np.inf) ** 2))
        b2 += float(np.sum(bc * bc))
        if flip_at is not None:
            flips += int(np.count_nonzero(~(err <= flip_at)))
    nb, diff = math.sqrt(b2), math.sqrt(d2)
    rel = diff / nb if nb > 0 else (0.0 if diff == 0 else math.inf)
    ok_elem = worst <= 0
    if flip_at is not None:
        frac = flips / n
        return ok_elem and frac <= rel_l2, werr, wtol, wi, rel, frac
    ok_l2 = diff == 0.0 if rel_l2 == 0.0 else rel <= rel_l2
    return ok_elem and ok_l2, werr, wtol, wi, rel, None


def cmd_dumps(args):
    lr, alpha, precision = 1e-5, 0.99, "fp32"
    pos = []
    it = iter(args)
    for x in it:
        if x == "--lr":
            lr = float(next(it))
        elif x == "--alpha":
            alpha = float(next(it))
        elif x == "--precision":
            precision = next(it, "")
            if precision not in PRECISIONS:
                print(f"compare_dumps: --precision {precision}: expected fp32, tf32 or bf16")
                return 2
        else:
            pos.append(x)
    if len(pos) != 2:
        print(__doc__)
        return 2
    try:
        A, meta_a = read_safetensors(pos[0])
        B, meta_b = read_safetensors(pos[1])
    except (OSError, ValueError, KeyError) as e:
        print(f"compare_dumps: {e}")
        return 2
    rows = tolerances(precision)
    move = lr / math.sqrt(1.0 - alpha)   # one RMSProp step from v = 0
    print(f"compare_dumps: {pos[0]} (got, GEMMs at {precision}) against {pos[1]} (reference, "
          f"fp32), {len(B)} tensors")
    print(f"{'tensor':44s} {'n':>9s} {'worst|err|':>11s} {'tol':>10s} {'relL2':>9s} "
          f"{'limit':>8s}  result" + ("  (param.*: relL2 and limit are the fraction of flipped "
                                      "steps and its limit)" if precision != "fp32" else ""))
    fails = 0
    for name in sorted(B):
        b = B[name]
        if name not in A:
            print(f"{name:44s} missing from {pos[0]}  FAIL")
            fails += 1
            continue
        a = A[name]
        if a.shape != b.shape:
            print(f"{name:44s} shape {a.shape} vs {b.shape}  FAIL")
            fails += 1
            continue
        pat, atol, atol_frac, rtol, rel_l2, _ = tolerance_for(name, rows)
        flip_at = None
        if atol is None:   # param.*: from the learning rate
            atol = 2.5 * move
            if precision != "fp32":
                flip_at = move
        ok, werr, wtol, _, rel, frac = judge(name, a, b, atol, atol_frac, rtol, rel_l2, flip_at)
        fails += not ok
        if frac is not None:   # param.* at tf32/bf16: the flipped fraction and its limit
            rel = frac
        print(f"{name:44s} {b.size:9d} {werr:11.3e} {wtol:10.3e} {rel:9.2e} {rel_l2:8.1e}  "
              f"{'pass' if ok else 'FAIL'}")
    extra = sorted(set(A) - set(B))
    if extra:
        print(f"note: {len(extra)} tensors only in {pos[0]}: {', '.join(extra[:5])}")
    print(f"compare_dumps: {len(B) - fails} of {len(B)} tensors within tolerance ({precision})")
    print(f"tolerances at {precision} (pattern: atol, atol_frac of max|ref|, rtol, relative L2 "
          f"limit{' (param.*: flipped fraction)' if precision != 'fp32' else ''} — why):")
    for pat, atol, atol_frac, rtol, rel_l2, why in rows:
        print(f"  {pat}: {atol if atol is not None else '2.5*lr/sqrt(1-alpha)'}, {atol_frac:.3g}, "
              f"{rtol:.3g}, {rel_l2:.3g} — {why}")
    return 1 if fails else 0


# ---- step logs ------------------------------------------------------------------------

LOSS_KEYS = ["J", "loss", "loss.total", "loss_total", "total", "j"]
STEP_KEYS = ["step", "iter", "it"]
MS_KEYS = ["ms", "step_ms", "ms_per_step", "time_ms"]
SEC_KEYS = ["time", "seconds", "step_s", "dt", "s", "time_s"]
IPS_KEYS = ["images_per_s", "img_per_s", "images/s", "img/s", "ips", "imgs"]


def read_log(path):
    """Rows of a JSON-lines or CSV step log as dicts of floats (non-numbers dropped)."""
    rows = []
    with open(path) as f:
        text = f.read()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return rows
    if lines[0].lstrip().startswith("{"):
        for ln in lines:
            try:
                d = json.loads(ln)
            except json.JSONDecodeError:
                continue
            if isinstance(d, dict) and "config" not in d:   # dath train's run configuration line
                rows.append({k: float(v) for k, v in d.items()
                             if isinstance(v, (int, float)) and not isinstance(v, bool)})
    else:
        head = [h.strip() for h in lines[0].split(",")]
        for ln in lines[1:]:
            vals = ln.split(",")
            d = {}
            for k, v in zip(head, vals):
                try:
                    d[k] = float(v)
                except ValueError:
                    pass
            rows.append(d)
    return rows


def pick(rows, keys):
    for k in keys:
        if rows and all(k in r for r in rows):
            return k
    return None


def cmd_losses(args):
    steps, precision = 50, "fp32"
    pos = []
    it = iter(args)
    for x in it:
        if x == "--steps":
            steps = int(next(it))
        elif x == "--precision":
            precision = next(it, "")
            if precision not in PRECISIONS:
                print(f"compare_dumps losses: --precision {precision}: expected fp32, tf32 or bf16")
                return 2
        else:
            pos.append(x)
    if len(pos) != 2:
        print(__doc__)
        return 2
    try:
        ra, rb = read_log(pos[0]), read_log(pos[1])
    except OSError as e:
        print(f"compare_dumps losses: {e}")
        return 2
    ka, kb = pick(ra, LOSS_KEYS), pick(rb, LOSS_KEYS)
    if not ka or not kb:
        print(f"compare_dumps losses: no loss column (looked for {LOSS_KEYS}) in "
              f"{pos[0] if not ka else pos[1]}")
        return 2
    n = min(steps, len(ra), len(rb))
    if n < steps:
        print(f"compare_dumps losses: only {n} steps logged (wanted {steps})")
    atol, rtol = train_tolerance(precision)
    print(f"{'step':>5s} {'cuda':>14s} {'cpu':>14s} {'|diff|':>10s} {'tol':>10s}  (CUDA GEMMs at "
          f"{precision})")
    fails, worst = 0, 0.0
    for i in range(n):
        a, b = ra[i][ka], rb[i][kb]
        tol = atol + rtol * abs(b)
        d = abs(a - b)
        bad = not (d <= tol)
        fails += bad
        worst = max(worst, d / tol if tol > 0 else math.inf)
        if bad or i < 3 or i == n - 1 or i % 10 == 9:
            print(f"{i:5d} {a:14.7g} {b:14.7g} {d:10.3e} {tol:10.3e}{'  FAIL' if bad else ''}")
    print(f"compare_dumps losses: {n - fails} of {n} steps within {atol:.3g} + "
          f"{rtol:.3g}*|ref| (column '{ka}', {precision}); worst |diff|/tol = {worst:.3g}")
    return 1 if fails or n < steps else 0


def cmd_steptime(args):
    skip, batch = 1, 0
    pos = []
    it = iter(args)
    for x in it:
        if x == "--skip":
            skip = int(next(it))
        elif x == "--batch":
            batch = int(next(it))
        else:
            pos.append(x)
    if len(pos) != 1:
        print(__doc__)
        return 2
    rows = read_log(pos[0])[skip:]
    if not rows:
        print("nan nan")
        return 1
    km, ks, ki = pick(rows, MS_KEYS), pick(rows, SEC_KEYS), pick(rows, IPS_KEYS)
    ms = ips = float("nan")
    if km:
        ms = float(np.median([r[km] for r in rows]))
    elif ks:
        ms = 1e3 * float(np.median([r[ks] for r in rows]))
    if ki:
        ips = float(np.median([r[ki] for r in rows]))
    elif batch and ms == ms:
        ips = batch / (ms * 1e-3)
    if ms != ms and ips == ips and batch:
        ms = 1e3 * batch / ips
    print(f"{ms:.3f} {ips:.1f}")
    return 0 if ms == ms else 1


# ---- codes ----------------------------------------------------------------------------

def cmd_codes(args):
    bits = None
    pos = []
    it = iter(args)
    for x in it:
        if x == "--bits":
            bits = int(next(it))
        else:
            pos.append(x)
    if len(pos) != 3:
        print(__doc__)
        return 2
    try:
        a, b = np.load(pos[0]), np.load(pos[1])
        D, _ = read_safetensors(pos[2])
    except (OSError, ValueError) as e:
        print(f"compare_dumps codes: {e}")
        return 2
    h = D["h"].astype(np.float64)
    K = bits or h.shape[1]
    if a.shape != b.shape:
        print(f"compare_dumps codes: shapes differ: {a.shape} vs {b.shape}  FAIL")
        return 1
    ba = np.unpackbits(a, axis=1)[:, :K]
    bb = np.unpackbits(b, axis=1)[:, :K]
    if h.shape[0] != ba.shape[0]:
        print(f"compare_dumps codes: {ba.shape[0]} code rows but the dump has {h.shape[0]} rows")
        return 1
    ref_bits = (h[:, :K] >= 0).astype(np.uint8)
    differ = ba != bb
    near0 = np.abs(h[:, :K]) <= H_ZERO
    bad = differ & ~near0
    self_bad = (bb != ref_bits) & ~near0
    print(f"compare_dumps codes: {ba.shape[0]} codes of {K} bits; {int(differ.sum())} bits differ, "
          f"{int((differ & near0).sum())} of them where |h| <= {H_ZERO}; "
          f"{int(bad.sum())} differ elsewhere")
    print(f"compare_dumps codes: reference codes vs sign(h) of the reference dump: "
          f"{int(self_bad.sum())} bits differ away from 0")
    if bad.any():
        r, c = np.argwhere(bad)[0]
        print(f"  first: row {r} bit {c}: cuda {ba[r, c]} cpu {bb[r, c]} h {h[r, c]:.3g}  FAIL")
    return 1 if bad.any() or self_bad.any() else 0


# ---- generated images -----------------------------------------------------------------

def write_png(path, img):
    """img: uint8 [H, W, 3]. A plain RGB PNG (filter 0 rows, zlib)."""
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(tag, data):
        c = struct.pack(">I", len(data)) + tag + data
        return c + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 1)))
        f.write(chunk(b"IEND", b""))


def cmd_images(args):
    side, seed = 256, 1
    pos = []
    it = iter(args)
    for x in it:
        if x == "--side":
            side = int(next(it))
        elif x == "--seed":
            seed = int(next(it))
        else:
            pos.append(x)
    if len(pos) != 3:
        print(__doc__)
        return 2
    out, n, C = pos[0], int(pos[1]), int(pos[2])
    os.makedirs(os.path.join(out, "img"), exist_ok=True)
    rng = np.random.default_rng(seed)
    # each class: a colour and a position, drawn as a soft blob over a smooth background
    colours = rng.integers(40, 256, size=(C, 3))
    centres = rng.uniform(0.2, 0.8, size=(C, 2)) * side
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    lines = []
    for i in range(n):
        lab = np.zeros(C, dtype=np.uint8)
        if rng.uniform() >= 0.05:        # about 1 image in 20 has no label
            k = int(rng.integers(1, 4))
            lab[rng.choice(C, size=min(k, C), replace=False)] = 1
        base = rng.uniform(0, 90, size=3)
        g = (xx / side)[..., None] * rng.uniform(-40, 40, size=3) + base
        img = g + rng.normal(0, 6, size=(side, side, 3))
        for c in np.flatnonzero(lab):
            cy, cx = centres[c] + rng.normal(0, side * 0.04, size=2)
            r2 = (side * 0.12) ** 2
            w = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / r2)[..., None]
            img = img * (1 - w) + colours[c] * w
        name = f"img/{i:05d}.png"
        write_png(os.path.join(out, name), np.clip(img, 0, 255).astype(np.uint8))
        lines.append(name + " " + " ".join(str(int(v)) for v in lab))
    with open(os.path.join(out, "list.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"compare_dumps images: {n} images of {side}x{side}, {C} classes in {out}/list.txt")
    return 0


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(argv) >= 2 else 2
    modes = {"losses": cmd_losses, "codes": cmd_codes, "images": cmd_images,
             "steptime": cmd_steptime}
    if argv[1] in modes:
        return modes[argv[1]](argv[2:])
    return cmd_dumps(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
