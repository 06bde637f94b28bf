#!/usr/bin/env python3
"""Writes tests/fuzz/corpus/frame_request/: serialized plankton.Request
messages with a FrameRequest body (the protobuf wire format encoded by hand,
field numbers from proto/plankton.proto), small frames with known objects.
usage: make_frame_request_corpus.py [DIR]"""
import os
import struct
import sys
import zlib


def varint(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def f_varint(n, v):
    return varint(n << 3) + varint(v)


def f_bytes(n, b):
    return varint(n << 3 | 2) + varint(len(b)) + b


def f_float(n, x):
    return varint(n << 3 | 5) + struct.pack("<f", x)


def image(fmt, data, w=0, h=0, bits=0):
    m = f_varint(1, fmt) + f_bytes(2, data)
    if w:
        m += f_varint(3, w) + f_varint(4, h)
    if bits:
        m += f_varint(5, bits)
    return m


def request(fid, img, bg=None, seg=b"", top_k=0, crops=True, full=False):
    fr = f_varint(1, fid) + f_bytes(3, img)
    if bg is not None:
        fr += f_bytes(4, bg)
    if seg:
        fr += f_bytes(5, seg)
    if top_k:
        fr += f_varint(6, top_k)
    if full:
        fr += f_varint(7, 1)
    if crops:
        fr += f_varint(10, 1)
    return f_bytes(5, fr)  # Request.frame = 5


def frame8(w, h, boxes, bg=255, ink=40):
    px = bytearray([bg]) * (w * h)
    for x0, y0, bw, bh in boxes:
        for y in range(y0, y0 + bh):
            for x in range(x0, x0 + bw):
                px[y * w + x] = ink
    return bytes(px)


def png8(w, h, px):
    raw = b"".join(b"\0" + px[y * w:(y + 1) * w] for y in range(h))

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def png16(w, h, samples):
    raw = b"".join(b"\0" + b"".join(struct.pack(">H", v) for v in samples[y * w:(y + 1) * w])
                   for y in range(h))

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus",
                                                             "frame_request")
    os.makedirs(out, exist_ok=True)
    boxes = [(4, 4, 8, 6), (30, 10, 5, 9), (50, 30, 10, 10), (0, 40, 6, 8)]
    g8 = frame8(64, 48, boxes)
    g16 = b"".join(struct.pack("<H", v * 16) for v in g8)  # 12 significant bits
    seeds = {
        "raw8_objects": request(1, image(3, g8, 64, 48)),
        "raw16_12bit_background": request(2, image(5, g16, 64, 48, 12),
                                          bg=image(5, struct.pack("<H", 4080) * (64 * 48), 64, 48,
                                                   12)),
        "png_objects": request(3, image(1, png8(64, 48, g8)), top_k=3, full=True),
        "png16_12bit": request(8, image(1, png16(64, 48, [v * 16 for v in g8]), bits=12)),
        "settings": request(4, image(3, g8, 64, 48),
                            seg=f_float(1, 0.3) + f_varint(2, 20) + f_varint(3, 90)
                            + f_varint(4, 3) + f_varint(5, 2) + f_varint(6, 2) + f_varint(7, 2)),
        "empty_frame": request(5, image(3, frame8(16, 16, []), 16, 16), crops=False),
        "bad_size": request(6, image(3, g8, 0, 48)),
        "bad_background": request(7, image(3, g8, 64, 48), bg=image(3, g8[:64 * 40], 64, 40)),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as fh:
            fh.write(data)


if __name__ == "__main__":
    main()
