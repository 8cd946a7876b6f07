"""checks/baseline_ref.py — a short numpy version of `dath baseline`'s methods (host/baseline.h),
written from the same definitions, for checks/test_baseline.py to compare with on small cases.

Shapes: X [N, D] float32 features, Y [N, C] 0/1 labels, K bits. Everything in float64.
Conventions shared with host/baseline.c (so that the two can be compared at all):
  - a bit is 1 when its projection is >= 0; codes packed by numpy.packbits along rows;
  - directions are unique by sign: each column's component of largest magnitude (the first
    such) is positive;
  - random numbers are Philox-4x32-10 (kernels/rng.h) keyed by the seed: a normal for
    (tag, a, b) is Box-Muller on the four words of philox(tag, a, b, 0);
  - covariances are normalised by 1/N.
Each learner returns a dict with the tensors of the model file (mean, proj, dirs, vals,
rotation, trace; anchors, sigma for sdh)."""
import numpy as np

TAG_LSH, TAG_ITQ, TAG_SDH = 64, 65, 66
MASK = np.uint64(0xFFFFFFFF)


def philox(c0, c1, c2, c3, seed):
    """Philox-4x32-10 on arrays of counters (any broadcastable shapes); four uint64 arrays of 32-bit words."""
    c = [np.asarray(v, dtype=np.uint64) & MASK for v in (c0, c1, c2, c3)]
    c = np.broadcast_arrays(*c)
    c = [v.copy() for v in c]
    k0, k1 = np.uint64(seed & 0xFFFFFFFF), np.uint64((seed >> 32) & 0xFFFFFFFF)
    for _ in range(10):
        p0 = np.uint64(0xD2511F53) * c[0]
        p1 = np.uint64(0xCD9E8D57) * c[2]
        hi0, lo0 = p0 >> np.uint64(32), p0 & MASK
        hi1, lo1 = p1 >> np.uint64(32), p1 & MASK
        c = [hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0]
        k0 = (k0 + np.uint64(0x9E3779B9)) & MASK
        k1 = (k1 + np.uint64(0xBB67AE85)) & MASK
    return c


def gauss(seed, tag, a, b):
    w = philox(tag, a, b, 0, seed)
    x = ((w[0] << np.uint64(32)) | w[1]) >> np.uint64(11)
    y = ((w[2] << np.uint64(32)) | w[3]) >> np.uint64(11)
    u1 = (x + np.uint64(1)).astype(np.float64) * 2.0 ** -53
    u2 = y.astype(np.float64) * 2.0 ** -53
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(6.283185307179586 * u2)


def canon_sign(W):
    W = W.copy()
    idx = np.argmax(np.abs(W), axis=0)   # the first maximum, as in C
    s = np.sign(W[idx, np.arange(W.shape[1])])
    s[s == 0] = 1
    return W * s


def pack(V):
    return np.packbits((V >= 0).astype(np.uint8), axis=1)


def top_eig(S, K):
    w, Z = np.linalg.eigh(S)
    order = np.argsort(w)[::-1][:K]
    return canon_sign(Z[:, order]), w[order]


def random_rotation(K, seed):
    i, j = np.meshgrid(np.arange(K), np.arange(K), indexing="ij")
    G = gauss(seed, TAG_ITQ, i, j)
    Q, R = np.linalg.qr(G)
    s = np.sign(np.diag(R))
    s[s == 0] = 1
    return Q * s


def itq(V, seed, iters):
    """ITQ's rotation of V [N, K]; trace[t] = ||B_t - V R_t||^2, B_t = sign(V R_{t-1}), B_0 = sign(V R_0)."""
    R = random_rotation(V.shape[1], seed)
    VR = V @ R
    B = np.where(VR >= 0, 1.0, -1.0)
    trace = [np.sum((B - VR) ** 2)]
    for _ in range(iters):
        B = np.where(VR >= 0, 1.0, -1.0)
        P, _, Qt = np.linalg.svd(B.T @ V)    # B^T V = P S Q^T, R = Q P^T
        R = Qt.T @ P.T
        VR = V @ R
        trace.append(np.sum((B - VR) ** 2))
    return R, np.array(trace)


def lsh(X, K, seed):
    D = X.shape[1]
    k, d = np.meshgrid(np.arange(K), np.arange(D))       # [D, K]
    return {"mean": X.astype(np.float64).mean(0), "proj": gauss(seed, TAG_LSH, k, d)}


def pca(X, K, seed=1, iters=50, rotate=False):
    X = X.astype(np.float64)
    mu = X.mean(0)
    Xc = X - mu
    dirs, vals = top_eig(Xc.T @ Xc / len(X), K)
    out = {"mean": mu, "dirs": dirs, "vals": vals, "proj": dirs}
    if rotate:
        R, trace = itq(Xc @ dirs, seed, iters)
        out.update(rotation=R, trace=trace, proj=dirs @ R)
    return out


def itq_cca(X, Y, K, seed=1, iters=50, reg=1e-4):
    X = X.astype(np.float64)
    Y = (Y != 0).astype(np.float64)
    N, D = X.shape
    C = Y.shape[1]
    mu = X.mean(0)
    Xc, Yc = X - mu, Y - Y.mean(0)
    Sx, Sy, Sxy = Xc.T @ Xc / N, Yc.T @ Yc / N, Xc.T @ Yc / N
    Sx = Sx + reg * np.trace(Sx) / D * np.eye(D)
    Sy = Sy + reg * np.trace(Sy) / C * np.eye(C)
    Lx, Ly = np.linalg.cholesky(Sx), np.linalg.cholesky(Sy)
    G = np.linalg.solve(Ly, np.linalg.solve(Lx, Sxy).T).T   # Lx^-1 Sxy Ly^-T
    U, s, _ = np.linalg.svd(G, full_matrices=False)
    Wc = canon_sign(np.linalg.solve(Lx.T, U))                # w_i = Lx^-T u_i
    r = min(D, C)
    dirs, vals = np.zeros((D, K)), np.zeros(K)
    for i in range(min(K, r)):
        rho = s[i] if s[i] > 1e-10 * s[0] else 0.0
        vals[i] = rho
        dirs[:, i] = rho * Wc[:, i]
    R, trace = itq(Xc @ dirs, seed, iters)
    return {"mean": mu, "dirs": dirs, "vals": vals, "rotation": R, "trace": trace, "proj": dirs @ R}


def rbf(X, A, sigma):
    d2 = np.maximum((X ** 2).sum(1)[:, None] + (A ** 2).sum(1)[None, :] - 2 * X @ A.T, 0)
    phi = d2 if sigma is None else np.exp(-d2 / (2 * sigma * sigma))
    return np.hstack([phi, np.ones((len(X), 1))])


def sdh(X, Y, K, seed=1, m=1000, lam=1.0, nu=1e-5, delta=1e-6, iters=5, dcc=5):
    """Returns the model and the smallest |DCC decision| met (how close the codes came to a tie)."""
    X = X.astype(np.float64)
    Y = (Y != 0).astype(np.float64)
    N = len(X)
    w = philox(TAG_SDH, 0, np.arange(N), 0, seed)
    key = (w[0] << np.uint64(32)) | w[1]
    order = np.lexsort((np.arange(N), key))                  # by key, ties by row
    A = X[order[:m]]
    d2 = rbf(X, A, None)[:, :m]
    sigma = np.sqrt(d2).mean()
    Phi = np.hstack([np.exp(-d2 / (2 * sigma * sigma)), np.ones((N, 1))])
    i, k = np.meshgrid(np.arange(N), np.arange(K), indexing="ij")
    B = np.where(philox(TAG_SDH, 1, i, k, seed)[0] & np.uint64(1), 1.0, -1.0)
    AtA = Phi.T @ Phi
    dl = delta * np.trace(AtA) / (m + 1)
    AtA = AtA + dl * np.eye(m + 1)
    trace, margin = [], np.inf

    def obj(W, P):
        return (np.sum((Y - B @ W) ** 2) + lam * np.sum(W ** 2)
                + nu * (np.sum((B - Phi @ P) ** 2) + dl * np.sum(P ** 2)))

    W = P = None
    for rnd in range(iters + 1):
        last = rnd == iters
        if not last:
            W = np.linalg.solve(B.T @ B + lam * np.eye(K), B.T @ Y)
            if rnd > 0:
                trace.append(obj(W, P))
        P = np.linalg.solve(AtA, Phi.T @ B)
        trace.append(obj(W, P))
        if last:
            break
        Q = Y @ W.T + nu * (Phi @ P)
        Gm = W @ W.T
        for n in range(N):
            b = B[n]
            for _ in range(dcc):
                changed = False
                for l in range(K):
                    v = Q[n, l] - (b @ Gm[:, l] - b[l] * Gm[l, l])
                    margin = min(margin, abs(v))
                    nb = 1.0 if v > 0 else (-1.0 if v < 0 else b[l])
                    if nb != b[l]:
                        b[l] = nb
                        changed = True
                if not changed:
                    break
        trace.append(obj(W, P))
    return {"anchors": A, "sigma": np.array([sigma]), "proj": P, "trace": np.array(trace)}, margin


def encode(model, X):
    """The projections (before the sign) of X under a model dict."""
    X = X.astype(np.float64)
    if "anchors" in model:
        return rbf(X, np.asarray(model["anchors"], np.float64), float(np.ravel(model["sigma"])[0])) @ model["proj"]
    return (X - model["mean"]) @ model["proj"]
