"""checks/test_baseline.py — `dath baseline` against the numpy version of its methods
(checks/baseline_ref.py), through `dath eval`, and with bad inputs.

Against numpy (small cases, float64 on both sides), each method's saved model (mean,
directions, eigenvalues or correlations, rotation, trace, projections) and its codes:
  - tensors within 1e-8 of their largest element (1e-7 for SDH's P, whose Gram matrix
    is ill-conditioned), traces within 1e-9 relative;
  - codes bit for bit, except bits whose projection is within 1e-9 of 0 (counted; 0 here),
    since a rounding difference may flip those. Directions are made unique by sign on both
    sides (each one's largest-magnitude component positive). SDH's codes are compared only
    after checking that numpy's DCC met no decision closer to a tie than 1e-8.
  - Where bit-identity cannot hold: ITQ on tightly clustered data. There the codes B take
    few distinct rows, Bᵀ V loses rank, and every rotation of its null space is equally
    optimal, so two LAPACK builds may leave the path at the same error and go on to
    different rotations. That case is compared by its final quantisation error (within 1%)
    and its MAP (within 0.03).
  - ITQ-CCA with more bits than classes: the directions past the labels' rank have zero
    correlation and are zero; the codes are still unique (they depend on the rotation's
    rows for the non-zero directions only), and are compared bit for bit.
Known answers through `dath eval`: ITQ-CCA on linearly separable classes hidden under
larger uninformative variance reaches MAP@all ≥ 0.95; SDH beats LSH there by at least 0.2.
One-shot codes equal those of --save-model then --model; float64 features give the codes
of the same values in float32. Bad inputs give clear errors naming the file and value.
Skips (exit 77) without numpy or ./dath.
"""
import os
import re
import subprocess
import sys
import tempfile

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
import baseline_ref as ref  # noqa: E402
import st  # noqa: E402

failures = 0


def check(name, cond, detail=""):
    global failures
    print(("ok   " if cond else "FAIL ") + name + ("" if cond or not detail else "  " + detail))
    if not cond:
        failures += 1


def dath(*args, want=0):
    p = subprocess.run([DATH, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if want is not None and p.returncode != want:
        print(f"FAIL dath {' '.join(map(str, args))} exited {p.returncode} (wanted {want}):\n{p.stderr}")
        sys.exit(1)
    return p


def eval_map(tmp, q, ql, db, dl):
    out = dath("eval", "--query", q, "--query-labels", ql, "--db", db, "--db-labels", dl, "--topk", 0).stdout
    return float(re.search(r"MAP@all: ([0-9.]+)", out).group(1))


def close(name, got, want, tol):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        check(name, False, f"shape {got.shape} vs {want.shape}")
        return
    scale = max(np.abs(want).max(), 1e-300)
    err = np.abs(got - want).max() / scale
    check(f"{name}: max |dath − numpy| / max|numpy| = {err:.1e} (≤ {tol:g})", err <= tol)


def compare(tmp, tag, method, K, Xtr, Xq, ref_model, Ytr=None, extra=(), tol=1e-8, trace_tol=1e-9):
    """Learns with dath, compares the model file's tensors and the codes of Xq with numpy's."""
    f = os.path.join(tmp, tag)
    np.save(f + "_tr.npy", Xtr)
    np.save(f + "_q.npy", Xq)
    args = ["baseline", "--method", method, "--bits", K, "--train-features", f + "_tr.npy",
            "--features", f + "_q.npy", "--out", f + "_codes.npy", "--save-model", f + ".safetensors", *extra]
    if Ytr is not None:
        np.save(f + "_trl.npy", Ytr)
        args += ["--train-labels", f + "_trl.npy"]
    dath(*args)
    t, meta = st.read(f + ".safetensors")
    check(f"{tag}: model file says method {method}, {K} bits", meta.get("method") == method and meta.get("bits") == str(K))
    for name, want in ref_model.items():
        if name not in t:
            check(f"{tag}: model file holds '{name}'", False)
            continue
        if name == "trace":
            close(f"{tag} {name}", t[name], want, trace_tol)
        else:
            close(f"{tag} {name}", t[name], want, tol)
    V = ref.encode(ref_model, Xq)
    codes = np.load(f + "_codes.npy")
    want = ref.pack(V)
    near = np.abs(V) < 1e-9 * np.abs(V).max()
    got_bits = np.unpackbits(codes, axis=1)[:, :K] if codes.shape == want.shape else None
    if got_bits is None:
        check(f"{tag}: codes shape {codes.shape}", False, f"numpy's {want.shape}")
        return codes
    diff = (got_bits != np.unpackbits(want, axis=1)[:, :K])
    check(f"{tag}: codes equal numpy's bit for bit ({near.sum()} bits within 1e-9 of a tie, "
          f"{diff.sum()} differ, {int((diff & ~near).sum())} of them away from a tie)",
          not (diff & ~near).any() and codes.dtype == np.uint8)
    pad = np.unpackbits(codes, axis=1)[:, K:]
    check(f"{tag}: padding bits zero", not pad.any())
    return codes


def spread(rng, n, d):
    """Gaussian data with a spread spectrum, offset from the origin (ReLU-like features are)."""
    mix = rng.normal(size=(d, d))
    z = rng.normal(size=(n, d)) * (4.0 / (1 + np.arange(d)))
    return (z @ mix.T + 5.0).astype(np.float32)


def separable(rng, n, d, c, noise_dims_sd=3.0):
    """Single-label classes, linearly separable in a c-dim subspace, under larger isotropic noise."""
    lab = rng.integers(0, c, n)
    X = rng.normal(size=(n, d)) * noise_dims_sd
    cent = np.eye(c) * 4.0
    X[:, :c] = cent[lab] + 0.3 * rng.normal(size=(n, c))
    X = X @ np.linalg.qr(rng.normal(size=(d, d)))[0] + 2.0   # hide the subspace
    return X.astype(np.float32), np.eye(c, dtype=np.uint8)[lab]


with tempfile.TemporaryDirectory(prefix="dath-baseline-") as tmp:
    rng = np.random.default_rng(15)

    # ---- against numpy, unsupervised, on spread data -----------------------------------------
    Xtr, Xq = spread(rng, 300, 24), spread(rng, 80, 24)
    for K in (12, 16):
        compare(tmp, f"lsh-{K}", "lsh", K, Xtr, Xq, ref.lsh(Xtr, K, 3), extra=["--seed", 3])
        compare(tmp, f"pcah-{K}", "pcah", K, Xtr, Xq, ref.pca(Xtr, K))
        compare(tmp, f"itq-{K}", "itq", K, Xtr, Xq, ref.pca(Xtr, K, seed=5, rotate=True), extra=["--seed", 5])

    # ---- against numpy, supervised, multi-label data ----------------------------------------
    C, D = 4, 16
    Ytr = (rng.random((300, C)) < 0.35).astype(np.uint8)
    Yq = (rng.random((80, C)) < 0.35).astype(np.uint8)
    cent = rng.normal(size=(C, D)) * 2.0
    Xl, Xlq = (Ytr @ cent + rng.normal(size=(300, D))).astype(np.float32), (Yq @ cent + rng.normal(size=(80, D))).astype(np.float32)
    compare(tmp, "itq-cca-4", "itq-cca", 4, Xl, Xlq, ref.itq_cca(Xl, Ytr, 4), Ytr=Ytr)
    # more bits than classes, and a non-default ridge (--cca-reg reaches the learner)
    compare(tmp, "itq-cca-10 (K > C)", "itq-cca", 10, Xl, Xlq, ref.itq_cca(Xl, Ytr, 10, reg=1e-3), Ytr=Ytr,
            extra=["--cca-reg", 1e-3])
    sdh_ref, margin = ref.sdh(Xl, Ytr, 12, m=60, seed=2)
    check(f"sdh: numpy's DCC met no decision within 1e-8 of a tie (closest {margin:.2e})", margin > 1e-8)
    compare(tmp, "sdh-12", "sdh", 12, Xl, Xlq, sdh_ref, Ytr=Ytr, extra=["--sdh-anchors", 60, "--seed", 2], tol=1e-7)
    tr = np.asarray(st.read(os.path.join(tmp, "sdh-12.safetensors"))[0]["trace"])
    check(f"sdh: the objective never rises over its {len(tr) - 1} steps ({tr[0]:.4g} → {tr[-1]:.4g})",
          bool(np.all(np.diff(tr) <= 1e-12 * tr[:-1])))

    # ---- separable classes: MAP through dath eval ---------------------------------------------
    # one draw, so that training, queries and database share the hidden subspace
    Xall, Yall = separable(np.random.default_rng(17), 1000, 32, 4)
    Xs, Ys, Xsq, Ysq, Xsd, Ysd = Xall[:500], Yall[:500], Xall[500:600], Yall[500:600], Xall[600:], Yall[600:]
    paths = {}
    for name, arr in (("tr", Xs), ("trl", Ys), ("q", Xsq), ("ql", Ysq), ("db", Xsd), ("dbl", Ysd)):
        paths[name] = os.path.join(tmp, f"sep_{name}.npy")
        np.save(paths[name], arr)
    maps = {}
    for method in ("lsh", "itq", "itq-cca", "sdh"):
        mp = os.path.join(tmp, f"sep_{method}.safetensors")
        lab = ["--train-labels", paths["trl"]] if method in ("itq-cca", "sdh") else []
        dath("baseline", "--method", method, "--bits", 16, "--train-features", paths["tr"], *lab,
             "--features", paths["q"], "--out", os.path.join(tmp, f"sep_q_{method}.npy"), "--save-model", mp,
             "--sdh-anchors", 300)
        dath("baseline", "--model", mp, "--features", paths["db"], "--out", os.path.join(tmp, f"sep_db_{method}.npy"))
        maps[method] = eval_map(tmp, os.path.join(tmp, f"sep_q_{method}.npy"), paths["ql"],
                                os.path.join(tmp, f"sep_db_{method}.npy"), paths["dbl"])
    print("     MAP@all, 16 bits, 4 separable classes under larger noise: "
          + ", ".join(f"{k} {v:.4f}" for k, v in maps.items()))
    check(f"itq-cca on linearly separable classes: MAP@all {maps['itq-cca']:.4f} ≥ 0.95", maps["itq-cca"] >= 0.95)
    check(f"sdh beats lsh on labelled data: {maps['sdh']:.4f} ≥ {maps['lsh']:.4f} + 0.2", maps["sdh"] >= maps["lsh"] + 0.2)
    # one shot and --model give the same codes
    one = os.path.join(tmp, "sep_db_itq_oneshot.npy")
    dath("baseline", "--method", "itq", "--bits", 16, "--train-features", paths["tr"], "--features", paths["db"], "--out", one)
    check("one-shot codes equal --save-model/--model codes", np.array_equal(np.load(one), np.load(os.path.join(tmp, "sep_db_itq.npy"))))
    # float64 features: the same codes as the same values in float32
    f64 = os.path.join(tmp, "sep_db64.npy")
    np.save(f64, Xsd.astype(np.float64))
    dath("baseline", "--model", os.path.join(tmp, "sep_itq.safetensors"), "--features", f64, "--out", one)
    check("float64 features give the codes of their float32 values", np.array_equal(np.load(one), np.load(os.path.join(tmp, "sep_db_itq.npy"))))

    # ---- ITQ where bit-identity cannot hold: clustered data ------------------------------------
    lab = rng.integers(0, 4, 500)
    Xc = (rng.normal(size=(4, 32))[lab] * 3 + rng.normal(size=(500, 32))).astype(np.float32)
    np.save(os.path.join(tmp, "clu.npy"), Xc)
    dath("baseline", "--method", "itq", "--bits", 12, "--train-features", os.path.join(tmp, "clu.npy"),
         "--save-model", os.path.join(tmp, "clu.safetensors"))
    t, _ = st.read(os.path.join(tmp, "clu.safetensors"))
    r = ref.pca(Xc, 12, rotate=True)
    e_d, e_n = float(t["trace"][-1]), float(r["trace"][-1])
    check(f"itq on clustered data: final quantisation error dath {e_d:.6g}, numpy {e_n:.6g} (within 1%)",
          abs(e_d - e_n) <= 0.01 * e_n)
    check("itq on clustered data: dath's error never rises", bool(np.all(np.diff(np.asarray(t["trace"])) <= 1e-9 * e_n)))
    Ylab = np.eye(4, dtype=np.uint8)[lab]
    dath("baseline", "--model", os.path.join(tmp, "clu.safetensors"), "--features", os.path.join(tmp, "clu.npy"),
         "--out", os.path.join(tmp, "clu_codes.npy"))
    np.save(os.path.join(tmp, "clu_l.npy"), Ylab)
    np.save(os.path.join(tmp, "clu_ref.npy"), ref.pack(ref.encode(r, Xc)))
    m_d = eval_map(tmp, os.path.join(tmp, "clu_codes.npy"), os.path.join(tmp, "clu_l.npy"),
                   os.path.join(tmp, "clu_codes.npy"), os.path.join(tmp, "clu_l.npy"))
    m_n = eval_map(tmp, os.path.join(tmp, "clu_ref.npy"), os.path.join(tmp, "clu_l.npy"),
                   os.path.join(tmp, "clu_ref.npy"), os.path.join(tmp, "clu_l.npy"))
    check(f"itq on clustered data: MAP@all dath {m_d:.4f}, numpy {m_n:.4f} (within 0.03)", abs(m_d - m_n) <= 0.03)

    # ---- bad inputs: exit status and a message naming the file and the value ----------------
    def bad(name, want_rc, patterns, *args):
        p = dath(*args, want=None)
        msg = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
        ok = p.returncode == want_rc and all(s in p.stderr for s in patterns)
        check(f"bad input: {name} (exit {p.returncode}: {msg})", ok, f"wanted exit {want_rc} and {patterns}")

    tr, trl, q = paths["tr"], paths["trl"], paths["q"]
    out = os.path.join(tmp, "bad_codes.npy")
    short = os.path.join(tmp, "short_l.npy")
    np.save(short, Ys[:-1])
    bad("labels with fewer rows", 1, [short, tr, "499", "500"],
        "baseline", "--method", "sdh", "--bits", 8, "--train-features", tr, "--train-labels", short, "--features", q, "--out", out)
    u8 = os.path.join(tmp, "u8.npy")
    np.save(u8, (Xs > 0).astype(np.uint8))
    bad("uint8 features", 1, [u8, "dtype '|u1'"], "baseline", "--method", "lsh", "--bits", 8, "--train-features", u8,
        "--features", q, "--out", out)
    i8 = os.path.join(tmp, "i8.npy")
    np.save(i8, np.zeros((5, 3), np.int64))
    bad("int64 features", 1, [i8, "dtype '<i8'"], "baseline", "--method", "itq", "--bits", 2, "--train-features", i8,
        "--features", q, "--out", out)
    bad("K larger than the dimension", 1, ["--bits 40", "32 dimensions", tr],
        "baseline", "--method", "pcah", "--bits", 40, "--train-features", tr, "--features", q, "--out", out)
    bad("K larger than 4096", 2, ["--bits 5000", "4096"],
        "baseline", "--method", "lsh", "--bits", 5000, "--train-features", tr, "--features", q, "--out", out)
    empty = os.path.join(tmp, "empty.npy")
    open(empty, "wb").close()
    bad("an empty file", 1, [empty, "not a .npy file"], "baseline", "--method", "lsh", "--bits", 8,
        "--train-features", empty, "--features", q, "--out", out)
    none = os.path.join(tmp, "zero_rows.npy")
    np.save(none, np.zeros((0, 32), np.float32))
    bad("a file of no rows", 1, [none, "no features"], "baseline", "--method", "itq", "--bits", 8,
        "--train-features", none, "--features", q, "--out", out)
    nan = os.path.join(tmp, "nan.npy")
    Xn = Xs.copy()
    Xn[7, 3] = np.nan
    np.save(nan, Xn)
    bad("a NaN in the features", 1, [nan, "row 7, column 3"], "baseline", "--method", "pcah", "--bits", 8,
        "--train-features", nan, "--features", q, "--out", out)
    narrow = os.path.join(tmp, "narrow.npy")
    np.save(narrow, Xs[:, :16])
    bad("features of another dimension than the model's", 1, [narrow, "16 columns", "32-dimensional"],
        "baseline", "--model", os.path.join(tmp, "sep_itq.safetensors"), "--features", narrow, "--out", out)
    bad("a supervised method without labels", 2, ["--train-labels"],
        "baseline", "--method", "itq-cca", "--bits", 8, "--train-features", tr, "--features", q, "--out", out)
    bad("an unknown method", 2, ["--method 'kmh'"],
        "baseline", "--method", "kmh", "--bits", 8, "--train-features", tr, "--features", q, "--out", out)
    bad("more anchors than training rows", 1, ["--sdh-anchors 1000", "500 training rows", tr],
        "baseline", "--method", "sdh", "--bits", 8, "--train-features", tr, "--train-labels", trl, "--features", q, "--out", out)
    bad("--model with learning options", 2, ["--model applies a saved model"],
        "baseline", "--model", os.path.join(tmp, "sep_itq.safetensors"), "--method", "lsh", "--features", q, "--out", out)
    notmodel = os.path.join(tmp, "plain.safetensors")
    st.write(notmodel, {"x": np.zeros(3, np.float32)}, {})
    bad("a safetensors file that is no baseline model", 1, [notmodel, "not a dath baseline model"],
        "baseline", "--model", notmodel, "--features", q, "--out", out)
    check("no codes file was left by the failures", not os.path.exists(out))

print("all checks passed" if not failures else f"{failures} check(s) FAILED")
sys.exit(1 if failures else 0)
