"""checks/st.py — a small safetensors reader and writer on numpy alone.

The format (https://github.com/huggingface/safetensors): an 8-byte little-endian
header length N, N bytes of JSON
    {"__metadata__": {"key": "value", ...},
     "name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...}
(padded with spaces to a multiple of 8), then the data; offsets are relative to the
start of the data. Used by the checks and the PyTorch peer so that neither needs the
`safetensors` package.

    tensors, meta = st.read(path)           # dict name -> read-only ndarray, dict str -> str
    st.write(path, {"a": np.zeros(3, np.float32)}, {"variant": "dath"})

read() maps the file and returns views into it (no copy); np.array(t) to own one.
write() is atomic: a temporary file beside the target, fsync, rename.
Errors raise ValueError naming the file.
"""
import json
import mmap
import os
import struct
import tempfile

import numpy as np

# safetensors dtype name <-> numpy dtype (little-endian)
DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"), "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
    "U16": np.dtype("<u2"), "U32": np.dtype("<u4"), "U64": np.dtype("<u8"),
}
NAMES = {v: k for k, v in DTYPES.items()}

MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's limit


def read(path):
    """Reads a safetensors file. Returns (tensors, metadata): tensors maps each name
    to a read-only numpy array (a view of the mapped file), metadata is the
    __metadata__ map ({} when absent). BF16 tensors come back as uint16 raw bits."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            raise ValueError(f"{path}: {size} bytes, too short for a safetensors file")
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    (hlen,) = struct.unpack("<Q", mm[:8])
    if hlen > MAX_HEADER or 8 + hlen > size:
        raise ValueError(f"{path}: header length {hlen} does not fit a {size}-byte file")
    try:
        header = json.loads(mm[8:8 + hlen].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    base, data_len = 8 + hlen, size - 8 - hlen
    tensors = {}
    for name, info in header.items():
        try:
            code, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: tensor '{name}' has no dtype/shape/data_offsets") from None
        if code == "BF16":
            dt = np.dtype("<u2")
        elif code in DTYPES:
            dt = DTYPES[code]
        else:
            raise ValueError(f"{path}: tensor '{name}' has unknown dtype '{code}'")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if not (0 <= begin <= end <= data_len) or end - begin != count * dt.itemsize:
            raise ValueError(f"{path}: tensor '{name}' offsets [{begin},{end}] do not fit "
                             f"shape {shape} {code} in {data_len} data bytes")
        tensors[name] = np.frombuffer(mm, dtype=dt, count=count, offset=base + begin).reshape(shape)
    return tensors, {str(k): str(v) for k, v in meta.items()}


def write(path, tensors, metadata=None):
    """Writes tensors (name -> numpy array of a dtype in DTYPES) and metadata (str ->
    str) to path atomically. Arrays are written C-contiguous, little-endian."""
    header, chunks, at = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, arr in tensors.items():
        arr = np.asarray(arr)
        dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        if dt not in NAMES:
            raise ValueError(f"{path}: tensor '{name}' has dtype {arr.dtype}, not one safetensors stores")
        shape = list(arr.shape)
        arr = np.ascontiguousarray(arr, dtype=dt)
        header[name] = {"dtype": NAMES[dt], "shape": shape, "data_offsets": [at, at + arr.nbytes]}
        chunks.append(arr)
        at += arr.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".st-", dir=directory)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for c in chunks:
                f.write(memoryview(c.reshape(-1)).cast("B"))  # no copy of the data
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
