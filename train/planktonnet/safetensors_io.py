"""safetensors files without the safetensors package (F32 and F16 tensors).

Layout: u64 little-endian header length N, N bytes of JSON
{"<name>": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
then the raw little-endian data; offsets are relative to the end of the header.
The writer pads the header with spaces to a multiple of 8 bytes (as the
reference implementation does) and packs tensors in the given order.
"""

from __future__ import annotations

import json
import struct
from collections import OrderedDict
from typing import Dict, Mapping, Optional

import numpy as np

DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2")}
MAX_HEADER = 100 << 20


class SafetensorsError(ValueError):
    pass


def _as_numpy(t) -> np.ndarray:
    if hasattr(t, "detach"):  # a torch tensor, without importing torch here
        t = t.detach().cpu().float().numpy() if t.dtype.is_floating_point else t.cpu().numpy()
    return np.asarray(t)


def dumps(tensors: Mapping[str, object], dtype: str = "F32",
          metadata: Optional[Mapping[str, str]] = None) -> bytes:
    """Serialises name -> array (numpy or torch) as `dtype` (F32 or F16)."""
    if dtype not in DTYPES:
        raise SafetensorsError("dtype must be F32 or F16, got %r" % dtype)
    header, blobs, offset = OrderedDict(), [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        if name == "__metadata__":
            raise SafetensorsError("'__metadata__' is not a tensor name")
        a = _as_numpy(t)
        if dtype == "F16":
            finite = np.isfinite(a)
            if np.any(np.abs(a[finite]) > 65504):
                raise SafetensorsError("tensor '%s' overflows F16" % name)
        data = np.ascontiguousarray(a, dtype=DTYPES[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": [int(d) for d in a.shape],
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def write(path: str, tensors: Mapping[str, object], dtype: str = "F32",
          metadata: Optional[Mapping[str, str]] = None) -> None:
    data = dumps(tensors, dtype, metadata)
    with open(path, "wb") as f:
        f.write(data)


def loads(buf: bytes, name: str = "<safetensors>", widen: bool = True):
    """Parses a safetensors blob -> (OrderedDict name -> numpy array, metadata dict).

    F16 tensors are widened to float32 when `widen` (what the C loader does).
    Checks offsets (in range, matching shape and dtype, not overlapping).
    """
    if len(buf) < 8:
        raise SafetensorsError("%s: truncated (%d bytes, no header length)" % (name, len(buf)))
    (n,) = struct.unpack_from("<Q", buf, 0)
    if n > MAX_HEADER or 8 + n > len(buf):
        raise SafetensorsError("%s: header length %d is beyond the file (%d bytes)" % (
            name, n, len(buf)))
    try:
        header = json.loads(buf[8:8 + n].decode("utf-8"), object_pairs_hook=OrderedDict)
    except (UnicodeDecodeError, ValueError) as e:
        raise SafetensorsError("%s: bad JSON header: %s" % (name, e)) from None
    if not isinstance(header, dict):
        raise SafetensorsError("%s: the header is not a JSON object" % name)
    data = memoryview(buf)[8 + n:]
    meta = header.pop("__metadata__", {}) or {}
    out, spans = OrderedDict(), []
    for tname, info in header.items():
        try:
            dtype, shape, (b, e) = info["dtype"], info["shape"], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise SafetensorsError("%s: tensor '%s': bad header entry %r" % (name, tname, info))
        if dtype not in DTYPES:
            raise SafetensorsError("%s: tensor '%s' has dtype %s; expected F32 or F16" % (
                name, tname, dtype))
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if not (0 <= b <= e <= len(data)) or e - b != count * DTYPES[dtype].itemsize:
            raise SafetensorsError("%s: tensor '%s': offsets [%d, %d] do not fit shape %s %s in "
                                   "%d data bytes" % (name, tname, b, e, shape, dtype, len(data)))
        spans.append((b, e, tname))
        a = np.frombuffer(data[b:e], dtype=DTYPES[dtype]).reshape(shape)
        out[tname] = a.astype(np.float32) if (widen and dtype == "F16") else a.copy()
    spans.sort()
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise SafetensorsError("%s: tensors '%s' and '%s' overlap" % (name, n0, n1))
    return out, dict(meta)


def read(path: str, widen: bool = True):
    """Reads a .safetensors file -> (OrderedDict name -> numpy array, metadata)."""
    with open(path, "rb") as f:
        buf = f.read()
    return loads(buf, path, widen)


def read_tensors(path: str) -> Dict[str, np.ndarray]:
    return read(path)[0]
