"""checks/test_search.py — `dath search` on the command line, against `dath eval` and numpy.

  1. codes: random query and database codes with many ties (3 varying bits), labels;
     `dath search --codes --json`: for every query the rows and distances of
     numpy's stable argsort of the Hamming distances (ties in database order), the
     relevance of each result from the labels, and AP@K computed from the printed
     relevance equal to `dath eval`'s MAP@K of that query alone (same ranking, to 1e-9);
     --top beyond the database, --db-labels in place of --db-list, the table's rows;
  2. images: a fresh dath-n model, `dath encode` of a database list; `--image A B`
     and `--list` of the same images give the results of `--codes` of their encoded
     codes; the contact sheet (--sheet .png) is a valid PNG of the layout's size whose
     first cell of each row has the query's blue frame and whose results are framed
     green/red as the JSON says, in rank order; --sheet .html names the results' files
     in rank order;
  3. errors: codes of another width, a list of another length, --sheet without
     --db-list, an image that cannot be read: each refused, naming what is wrong.
Skips (exit 77) when numpy is missing or ./dath (or $DATH) is not built.
"""
import json
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

# host/sheet.h's layout
FRAME, PAD, GAP, CAPTION = 3, 6, 14, 18
COLOURS = {"query": (40, 90, 220), True: (30, 160, 60), False: (210, 40, 40), None: (150, 150, 150)}
failures = 0


def check(name, cond, detail=""):
    global failures
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else "  " + str(detail)[:2000]))
    if not cond:
        failures += 1


def run(*args, want=0):
    p = subprocess.run([DATH, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if want is not None and p.returncode != want:
        print(f"FAIL dath {' '.join(args)} exited {p.returncode} (wanted {want}):\n{p.stderr}")
        sys.exit(1)
    return p


def png_write(path, img):
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def png_read(path):
    """An 8-bit RGB PNG (what stb_image_write writes) as an array [H, W, 3]."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "no PNG signature"
    pos, idat, w = 8, b"", None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if zlib.crc32(kind + body) != struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]:
            raise ValueError(f"bad CRC in {kind}")
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype == 2, f"depth {depth}, colour type {ctype}"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride, bpp = w * 3, 3
    out = bytearray(h * stride)
    prev = bytearray(stride)
    for y in range(h):
        ft, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], (prev[x - bpp] if x >= bpp else 0)
            if ft == 1: line[x] = (line[x] + a) & 255
            elif ft == 2: line[x] = (line[x] + b) & 255
            elif ft == 3: line[x] = (line[x] + (a + b) // 2) & 255
            elif ft == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out[y * stride:(y + 1) * stride] = line
        prev = line
    return np.frombuffer(bytes(out), np.uint8).reshape(h, w, 3)


def hamming(q, d):
    return np.unpackbits(np.bitwise_xor(q[None, :], d), axis=1).sum(1)


def ap_at(rel):
    rel = np.asarray(rel, dtype=float)
    hits = np.cumsum(rel)
    return float((rel * hits / np.arange(1, len(rel) + 1)).sum() / hits[-1]) if hits[-1] else 0.0


with tempfile.TemporaryDirectory(prefix="dath-search-") as tmp:
    P = lambda name: os.path.join(tmp, name)  # noqa: E731
    rng = np.random.default_rng(5)

    # ---- 1. codes --------------------------------------------------------------------
    D, Q, B, C, TOP = 300, 6, 2, 4, 20
    mask = np.array([0b11100000, 0b00000000], np.uint8)   # 3 varying bits: distances 0..3
    dc = rng.integers(0, 256, (D, B), dtype=np.uint8) & mask
    qc = rng.integers(0, 256, (Q, B), dtype=np.uint8) & mask
    dl = (rng.random((D, C)) < 0.3).astype(np.uint8)
    ql = (rng.random((Q, C)) < 0.4).astype(np.uint8)
    ql[0] = 0   # a query without labels: nothing is relevant to it
    np.save(P("db.npy"), dc)
    np.save(P("dl.npy"), dl)
    np.save(P("q.npy"), qc)
    np.save(P("ql.npy"), ql)
    with open(P("db.txt"), "w") as f:
        for i in range(D):
            f.write(f"img/{i:04d}.jpg " + " ".join(map(str, dl[i])) + "\n")
    out = run("search", "--codes", P("q.npy"), "--labels", P("ql.npy"), "--db", P("db.npy"), "--db-list",
              P("db.txt"), "--top", str(TOP), "--json").stdout
    res = [json.loads(line) for line in out.splitlines()]
    check(f"--json: one object a query ({Q})", len(res) == Q, out[:300])
    order_ok = rel_ok = lab_ok = True
    for i, r in enumerate(res):
        dist = hamming(qc[i], dc)
        want = np.argsort(dist, kind="stable")[:TOP]
        rows = [x["row"] for x in r["results"]]
        dists = [x["distance"] for x in r["results"]]
        order_ok &= rows == want.tolist() and dists == dist[want].tolist() and \
            [x["rank"] for x in r["results"]] == list(range(1, TOP + 1))
        rel_ok &= [x["relevant"] for x in r["results"]] == [bool((ql[i] & dl[k]).any()) for k in want]
        lab_ok &= r["labels"] == np.flatnonzero(ql[i]).tolist() and \
            all(x["labels"] == np.flatnonzero(dl[x["row"]]).tolist() and x["path"] == f"img/{x['row']:04d}.jpg"
                for x in r["results"])
    ties = sum(len(set(x["distance"] for x in r["results"])) < TOP for r in res)
    check(f"rows and distances are numpy's stable argsort of the distances (ties in database order; "
          f"{ties} of {Q} queries' top {TOP} hold ties)", order_ok and ties == Q)
    check("relevance = a shared label (a query without labels has none)", rel_ok)
    check("labels and paths of queries and results", lab_ok)

    # the same ranking as dath eval's: AP@TOP from search's relevance = eval's MAP@TOP of that query
    worst = 0.0
    for i, r in enumerate(res):
        np.save(P("qi.npy"), qc[i:i + 1])
        np.save(P("qli.npy"), ql[i:i + 1])
        ev = json.loads(run("eval", "--query", P("qi.npy"), "--query-labels", P("qli.npy"), "--db", P("db.npy"),
                            "--db-labels", P("dl.npy"), "--topk", str(TOP), "--json", "--device", "cpu").stdout)
        worst = max(worst, abs(ap_at([x["relevant"] for x in r["results"]]) - ev["map"]))
    check(f"AP@{TOP} of search's order = dath eval's MAP@{TOP} of each query alone (worst |diff| {worst:.1e})",
          worst <= 1e-9)

    big = [json.loads(line) for line in run("search", "--codes", P("q.npy"), "--labels", P("ql.npy"), "--db",
                                            P("db.npy"), "--db-labels", P("dl.npy"), "--top", "1000",
                                            "--json").stdout.splitlines()]
    check("--top above the database gives the whole database, in eval's order",
          all([x["row"] for x in b["results"]] == np.argsort(hamming(qc[i], dc), kind="stable").tolist()
              for i, b in enumerate(big)))
    check("--db-labels instead of --db-list: the same relevance, no paths",
          all(x["path"] is None for x in big[1]["results"]) and
          [x["relevant"] for x in big[1]["results"][:TOP]] == [x["relevant"] for x in res[1]["results"]])
    table = run("search", "--codes", P("q.npy"), "--db", P("db.npy"), "--top", "3").stdout
    rows3 = [ln.split() for ln in table.splitlines() if ln.split()[:1] in (["1"], ["2"], ["3"])]
    check("the table: a header a query and a line a result (rank, distance, relevance '?' without labels, row)",
          table.count("query ") == Q and len(rows3) == 3 * Q and all(len(r) == 4 and r[2] == "?" for r in rows3) and
          [int(r[3]) for r in rows3[:3]] == [x["row"] for x in res[0]["results"][:3]], table[:400])

    # ---- 2. images -------------------------------------------------------------------
    os.makedirs(P("im"))
    lines = []
    for i in range(10):
        h, w = 60 + 7 * i, 90 - 3 * i
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([(xx * 255 // w + 40 * i) % 256, (yy * 255 // h) % 256, ((xx * yy) % 97) * 2], -1)
        img = np.clip(img + rng.integers(-30, 30, size=img.shape), 0, 255).astype(np.uint8)
        png_write(P(f"im/{i}.png"), img)
        lines.append(f"im/{i}.png " + " ".join(map(str, rng.integers(0, 2, 3))))
    with open(P("idb.txt"), "w") as f:
        f.write("\n".join(lines[:8]) + "\n")
    with open(P("iq.txt"), "w") as f:
        f.write("\n".join(lines[8:]) + "\n")
    m = P("m.safetensors")
    run("init", "--variant", "dath-n", "--bits", "12", "--classes", "3", "--input-size", "64", "--seed", "3",
        "--out", m)
    run("encode", "--model", m, "--list", P("idb.txt"), "--root", tmp, "--device", "cpu", "--out", P("idb.npy"))
    run("encode", "--model", m, "--list", P("iq.txt"), "--root", tmp, "--device", "cpu", "--out", P("iq.npy"))
    common = ["--db", P("idb.npy"), "--db-list", P("idb.txt"), "--root", tmp, "--top", "3", "--json"]
    by_codes = [json.loads(x)["results"] for x in run("search", "--codes", P("iq.npy"), "--list", P("iq.txt"),
                                                      *common).stdout.splitlines()]
    p = run("search", "--model", m, "--image", P("im/8.png"), P("im/9.png"), "--device", "cpu", *common)
    by_image = [json.loads(x)["results"] for x in p.stdout.splitlines()]
    by_list = [json.loads(x)["results"] for x in run("search", "--model", m, "--list", P("iq.txt"), "--device",
                                                     "cpu", *common).stdout.splitlines()]
    strip = lambda rs: [[(x["row"], x["distance"]) for x in r] for r in rs]  # noqa: E731
    check("--image A B and --list of the same images: the results of --codes of their encoded codes",
          strip(by_image) == strip(by_codes) and by_list == by_codes, f"{by_image}\n{by_codes}")
    check("--image says how long the encode and the ranking took",
          "encoded in" in p.stderr and "ranked 2 queries against 8 codes" in p.stderr, p.stderr)

    T = 32
    run("search", "--model", m, "--list", P("iq.txt"), "--device", "cpu", *common[:-1], "--sheet", P("s.png"),
        "--thumb", str(T))
    img = png_read(P("s.png"))
    W = T + 2 * FRAME
    ew, eh = PAD + 4 * (W + PAD) + GAP, PAD + 2 * (W + CAPTION + PAD)
    check(f"--sheet s.png: a PNG of the layout's size ({ew} × {eh})", img.shape == (eh, ew, 3), img.shape)
    if img.shape == (eh, ew, 3):
        frames_ok = True
        for r in range(2):
            for c in range(4):
                x0 = PAD + c * (W + PAD) + (GAP if c else 0)
                y0 = PAD + r * (W + CAPTION + PAD)
                want = COLOURS["query"] if c == 0 else COLOURS[by_list[r][c - 1]["relevant"]]
                frames_ok &= tuple(img[y0, x0 + W // 2]) == want and tuple(img[y0 + W - 1, x0 + 1]) == want
        check("the sheet: the query first in each row (blue), then its results framed green/red as the JSON says",
              frames_ok)
        q0 = img[PAD + FRAME:PAD + FRAME + T, PAD + FRAME:PAD + FRAME + T].astype(int)
        check("the query's thumbnail is an image, not a blank cell", q0.std() > 5, q0.std())
    run("search", "--model", m, "--list", P("iq.txt"), "--device", "cpu", *common[:-1], "--sheet", P("s.html"))
    html = open(P("s.html")).read()
    srcs = [os.path.realpath(P(f"im/{x['row']}.png")) for x in by_list[0]]
    pos = [html.find(f'src="{s}"') for s in [os.path.realpath(P("im/8.png"))] + srcs]
    check("--sheet s.html: the query's and its results' files, in rank order", all(a >= 0 for a in pos) and
          pos == sorted(pos), pos)

    # ---- 3. errors -------------------------------------------------------------------
    np.save(P("wide.npy"), rng.integers(0, 256, (5, 3), dtype=np.uint8))
    e = run("search", "--codes", P("q.npy"), "--db", P("wide.npy"), want=1).stderr
    check("codes of another width: refused, naming both", "2 bytes" in e and "wide.npy" in e and "3 (24 bits)" in e, e)
    e = run("search", "--codes", P("q.npy"), "--db", P("db.npy"), "--db-list", P("idb.txt"), want=1).stderr
    check("a --db-list of another length: refused, naming both", "300 rows" in e and "has 8" in e, e)
    e = run("search", "--codes", P("q.npy"), "--db", P("db.npy"), "--sheet", P("x.png"), want=2).stderr
    check("--sheet without --db-list: a usage error", "--sheet needs --db-list" in e, e)
    with open(P("im/bad.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\nnot really")
    e = run("search", "--model", m, "--image", P("im/bad.png"), "--db", P("idb.npy"), "--device", "cpu",
            want=1).stderr
    check("an image that cannot be read: refused, naming it", "bad.png" in e, e)
    e = run("search", "--image", P("im/8.png"), "--db", P("idb.npy"), want=2).stderr
    check("--image without --model: a usage error", "--model" in e, e)

print(f"{failures} failed")
sys.exit(1 if failures else 0)
