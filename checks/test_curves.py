"""checks/test_curves.py — the loss curves of `dath train` and `dath eval --run … --curves`.

  1. `dath train` (dath-n, input 63, 2 steps an epoch) for one epoch without gnuplot on
     PATH: it says once that loss.png is skipped and writes loss_steps.csv and
     loss_epochs.csv; resumed for a second epoch with gnuplot: loss.png (two panels:
     900 × 760) and its script, the CSVs holding every step and epoch of log.jsonl,
     both runs' (J, J1, J2, J3 as the log has them);
  2. `dath eval --run A=… --run B=… --curves DIR`: DIR/A and DIR/B hold each run's
     curves; DIR/p_at_n.png, r_at_n.png, pr_rank.png, pr_radius.png overlay both (their
     scripts plot both runs' CSVs, titled by the runs' names); DIR/map.csv holds each run's
     MAP, P@r<=2, P@K, R@K exactly as `dath eval --json` prints them for that run alone,
     DIR/map.md the same rounded, and stdout the table; --json one object a run; without
     gnuplot the tables still; bad --run values refused.
Skips (exit 77) when numpy is missing, gnuplot is not installed, or ./dath is not built.
"""
import csv
import json
import os
import shutil
import struct
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
if not shutil.which("gnuplot"):
    print("SKIP: gnuplot is not installed (Debian: gnuplot-nox)")
    sys.exit(77)
failures = 0
NO_GNUPLOT = dict(os.environ, PATH="/nonexistent")


def check(name, cond, detail=""):
    global failures
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else "  " + str(detail)[:1500]))
    if not cond:
        failures += 1


def run(*args, want=0, env=None):
    p = subprocess.run([DATH, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if want is not None and p.returncode != want:
        print(f"FAIL dath {' '.join(args)} exited {p.returncode} (wanted {want}):\n{p.stderr[-3000:]}")
        sys.exit(1)
    return p


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


with tempfile.TemporaryDirectory(prefix="dath-curves-") as tmp:
    P = lambda name: os.path.join(tmp, name)  # noqa: E731

    # ---- 1. loss curves of a training run ---------------------------------------------
    run("mkdemo", "--out", P("demo"), "--train", "32", "--test", "8", "--database", "16", "--side", "64")
    out = P("run")
    train = ["train", "--train", P("demo/train.txt"), "--root", P("demo"), "--variant", "dath-n", "--bits", "8",
             "--batch", "16", "--input-size", "63", "--lr", "1e-4", "--seed", "1", "--device", "cpu", "--workers", "1"]
    p = run(*train, "--epochs", "1", "--out", out, env=NO_GNUPLOT)
    check("without gnuplot: said once, loss.png skipped, the CSVs written",
          p.stderr.count("loss.png skipped") == 1 and not os.path.exists(P("run/loss.png")) and
          len(rows(P("run/loss_steps.csv"))) == 2 and len(rows(P("run/loss_epochs.csv"))) == 1, p.stderr[-800:])
    p = run("train", "--resume", out, "--epochs", "2")
    size = png_size(P("run/loss.png"))
    check(f"resumed to epoch 2 with gnuplot: run/loss.png, two panels of 900 × 380 ({size})", size == (900, 760))
    check("its gnuplot script is kept beside it, plotting both CSVs", os.path.exists(P("run/loss.gp")) and
          all(s in open(P("run/loss.gp")).read() for s in ("'loss_steps.csv'", "'loss_epochs.csv'", "J3")))
    gp = open(P("run/loss.gp")).read()
    epoch_panel = gp[gp.find("mean of each epoch"):]
    check("the epoch panel's x tics are whole epochs (set xtics 1 for 2 epochs), the step panel's gnuplot's own",
          "\nset xtics 1\n" in epoch_panel and "set xtics autofreq" in gp[:gp.find("mean of each epoch")], gp)
    log = [json.loads(ln) for ln in open(P("run/log.jsonl"))]
    steps = [r for r in log if "step" in r and "epoch" in r]
    ends = [r for r in log if "epoch_end" in r]
    got_s, got_e = rows(P("run/loss_steps.csv")), rows(P("run/loss_epochs.csv"))
    same = lambda a, b: abs(float(a) - b) <= 1e-8 * max(1.0, abs(b))  # noqa: E731
    check(f"loss_steps.csv: every step of log.jsonl, both runs' ({len(steps)} steps), J J1 J2 J3 as logged",
          len(steps) == 4 and len(got_s) == 4 and
          all(int(g["step"]) == r["step"] and all(same(g[k.upper()], r[k]) for k in ("j", "j1", "j2", "j3"))
              for g, r in zip(got_s, steps)), f"{got_s} {steps}")
    check(f"loss_epochs.csv: every epoch's means ({len(ends)})",
          len(got_e) == 2 and all(int(g["epoch"]) == r["epoch_end"] and all(same(g[k.upper()], r[k])
                                                                           for k in ("j", "j1", "j2", "j3"))
                                  for g, r in zip(got_e, ends)), f"{got_e} {ends}")

    # ---- 2. several runs: overlays and the MAP table -------------------------------------
    rng = np.random.default_rng(3)
    Q, D, C = 30, 400, 5
    ql = (rng.random((Q, C)) < 0.35).astype(np.uint8)
    dl = (rng.random((D, C)) < 0.35).astype(np.uint8)
    files = {}
    for name, informative in (("good", 1), ("random", 0)):
        # "good": bit c of the first byte is label c (plus noise bits); "random": noise
        def codes(lab):
            c = rng.integers(0, 256, (len(lab), 2), dtype=np.uint8)
            if informative:
                c[:, 0] = np.packbits(np.concatenate([lab, np.zeros((len(lab), 8 - C), np.uint8)], 1), axis=1)[:, 0]
            return c
        fs = [P(f"{name}_{k}.npy") for k in ("q", "ql", "db", "dl")]
        for path, arr in zip(fs, (codes(ql), ql, codes(dl), dl)):
            np.save(path, arr)
        files[name] = fs
    runs = [x for name, fs in files.items() for x in ("--run", f"{name}=" + ",".join(fs))]
    cdir = P("cmp")
    p = run("eval", *runs, "--topk", "100", "--curves", cdir)
    alone = {name: json.loads(run("eval", "--query", fs[0], "--query-labels", fs[1], "--db", fs[2], "--db-labels",
                                  fs[3], "--topk", "100", "--json").stdout) for name, fs in files.items()}
    table = rows(os.path.join(cdir, "map.csv"))
    keys = (("map", "map"), ("p_r2", "p_r2"), ("p_at_k", "p_at_k"), ("r_at_k", "r_at_k"))
    check("map.csv: a row a run, each run's MAP@100, P@r<=2, P@100, R@100 exactly as dath eval --json prints them",
          [r["run"] for r in table] == ["good", "random"] and
          all(float(r[a]) == alone[r["run"]][b] and int(r["queries"]) == Q and int(r["database"]) == D
              for r in table for a, b in keys), f"{table}\n{alone}")
    md = open(os.path.join(cdir, "map.md")).read()
    check("map.md and stdout: the same table with both runs' MAP to 4 decimals",
          all(f"| {n} | 16 | {Q} | {D} | {alone[n]['map']:.4f} |" in md for n in files) and p.stdout == md,
          md + "\n" + p.stdout)
    check("the two runs differ as built (an informative code beats noise)", alone["good"]["map"] > alone["random"]["map"] + 0.1,
          alone)
    ok = True
    for png, csvname in (("p_at_n", "p_r_at_n.csv"), ("r_at_n", "p_r_at_n.csv"), ("pr_rank", "pr_rank.csv"),
                         ("pr_radius", "pr_radius.csv")):
        gp = open(os.path.join(cdir, png + ".gp")).read()
        ok &= png_size(os.path.join(cdir, png + ".png")) == (800, 600)
        ok &= all(f"'{n}/{csvname}'" in gp and f"title '{n}'" in gp for n in files)
        ok &= all(os.path.exists(os.path.join(cdir, n, csvname)) and os.path.exists(os.path.join(cdir, n, png + ".png"))
                  for n in files)
    check("four overlay plots (800 × 600), each of both runs' CSVs with their names in the legend; each run's own "
          "curves in DIR/NAME", ok)
    js = [json.loads(ln) for ln in run("eval", *runs, "--topk", "100", "--json").stdout.splitlines()]
    check("--json: one object a run, with its name and MAP", [j["run"] for j in js] == ["good", "random"] and
          all(j["map"] == alone[j["run"]]["map"] for j in js), js)
    p = run("eval", *runs, "--topk", "100", "--curves", P("cmp2"), env=NO_GNUPLOT)
    check("without gnuplot: the tables and CSVs, no plot, said", "overlays skipped" in p.stderr and
          os.path.exists(P("cmp2/map.csv")) and not os.path.exists(P("cmp2/p_at_n.png")), p.stderr[-600:])
    for bad, why in ((["--run", "a=" + ",".join(files["good"]), "--run", "a=" + ",".join(files["good"])], "twice"),
                     (["--run", "../x=" + ",".join(files["good"])], "must be letters"),
                     (["--run", "a=" + ",".join(files["good"][:3])], "four files"),
                     (["--run", "a=" + ",".join(files["good"]), "--query", files["good"][0]], "goes without")):
        e = run("eval", *bad, want=2).stderr
        check(f"--run refused: {why}", why in e, e)

print(f"{failures} failed")
sys.exit(1 if failures else 0)
