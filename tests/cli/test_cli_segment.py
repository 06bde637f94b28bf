"""plankton-client segment against a real planktond (tiny random-weight
model): made-up frames (dark ellipses of known boxes on a white 8-bit gray
PNG, written here with zlib):
- csv: one row per ellipse, each box the ellipse's own box (to 1 pixel),
  the header's columns; a white frame writes no row and exits 0;
- --save-crops DIR: one PNG per object, and `classify --probs` of that crop
  gives the segment row's label and probability (the crop is what the model
  saw: the same answer to 1e-6);
- json and tsv carry the same objects; ecotaxa: EcoTaxa's TSV (BOM, header,
  type row) with the csv rows' boxes, areas and classes, each object's crop
  beside it (the --save-crops crop, byte for byte), unique object ids (a
  frame given twice fails) and -o named ecotaxa*.tsv;
- -j 4 (frames in flight) writes -j 1's lines in input order, -u the same
  lines as they come; -j 0 is refused;
- --flat-field FILE (white on the left half, dark on the right): sent with
  the first frame only and kept by the daemon, it gives every frame the two
  left-half ellipses alone (on the right the ellipses are not darker than
  the flat field), where without it all four are found; an empty or
  missing FILE is a usage error (2);
- exit codes as classify's: a file that is not an image fails (1) naming
  it while the other frames are answered, no daemon is 3, no FRAME is 2."""
import csv
import io
import json
import os
import shutil
import struct
import sys
import tempfile
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_harness as h  # noqa: E402

W, H = 400, 300
ELLIPSES = [  # centre x, centre y, semi-axis a (x), b (y)
    (60, 60, 25, 15),
    (250, 80, 18, 30),
    (120, 200, 35, 20),
    (320, 220, 22, 22),
]


def write_png(path, gray):
    h_, w_ = gray.shape
    raw = b"".join(b"\0" + gray[y].tobytes() for y in range(h_))

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n")
        fh.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w_, h_, 8, 0, 0, 0, 0)))
        fh.write(chunk(b"IDAT", zlib.compress(raw, 6)))
        fh.write(chunk(b"IEND", b""))


def make_frame():
    yy, xx = np.mgrid[0:H, 0:W]
    img = np.full((H, W), 255, np.uint8)
    boxes = []
    for cx, cy, a, b in ELLIPSES:
        inside = ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 <= 1.0
        img[inside] = 60
        ys, xs = np.nonzero(inside)
        boxes.append((xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1))
    return img, boxes


def main():
    f = h.Failures("cli_segment")
    img, boxes = make_frame()
    with tempfile.TemporaryDirectory(prefix="pc-cli-segment-") as tmp:
        frame = os.path.join(tmp, "frame1.png")
        write_png(frame, img)
        white = os.path.join(tmp, "white.png")
        write_png(white, np.full((64, 64), 255, np.uint8))
        bad = os.path.join(tmp, "bad.png")
        with open(bad, "wb") as fh:
            fh.write(b"not a frame at all\n")
        crops = os.path.join(tmp, "crops")

        with h.Daemon() as d:
            r = h.run_cli(["segment", "-f", "csv", "--save-crops", crops, frame], socket=d.socket)
            f.check(r.rc == 0, "segment csv: %r" % r)
            rows = list(csv.reader(io.StringIO(r.out)))
            f.check(rows and rows[0][:7] == ["frame", "object", "x", "y", "width", "height",
                                              "area"] and rows[0][-2:] == ["label", "probability"],
                    "header: %r" % (rows[:1],))
            objs = rows[1:]
            f.check(len(objs) == len(ELLIPSES), "%d rows for %d ellipses: %r"
                    % (len(objs), len(ELLIPSES), r))
            found = sorted((int(o[2]), int(o[3]), int(o[4]), int(o[5])) for o in objs)
            for want, got in zip(sorted(boxes), found):
                f.check(all(abs(int(a) - int(b)) <= 1 for a, b in zip(want, got)),
                        "box %r, want %r" % (got, want))
            # each saved crop, classified alone: the row's answer
            for o in objs:
                crop = os.path.join(crops, "frame1_%s.png" % o[1])
                if not f.check(os.path.isfile(crop), "crop %s written" % crop):
                    continue
                c = h.run_cli(["classify", "-f", "csv", crop], socket=d.socket)
                crow = list(csv.reader(io.StringIO(c.out)))
                f.check(c.rc == 0 and len(crow) == 2, "classify %s: %r" % (crop, c))
                if len(crow) == 2:
                    f.check(crow[1][1] == o[-2] and abs(float(crow[1][2]) - float(o[-1])) <= 1e-6,
                            "crop %s alone: %r, in the frame: %r" % (crop, crow[1], o))
            # json and tsv: the same objects
            rj = h.run_cli(["segment", "-f", "json", "-k", "2", frame], socket=d.socket)
            js = [json.loads(line) for line in rj.out.splitlines()]
            f.check(rj.rc == 0 and len(js) == len(ELLIPSES), "json: %r" % rj)
            f.check(sorted((j["x"], j["y"], j["width"], j["height"]) for j in js) == found,
                    "json boxes %r" % js)
            f.check(all(len(j["top"]) == 2 and j["label"] == j["top"][0]["label"] for j in js),
                    "json top 2: %r" % js)
            rt = h.run_cli(["segment", "-f", "tsv", frame], socket=d.socket)
            f.check(rt.rc == 0 and len(rt.out.splitlines()) == 1 + len(ELLIPSES), "tsv: %r" % rt)
            # ecotaxa: the TSV EcoTaxa imports and each object's crop beside it
            bundle = os.path.join(tmp, "bundle")
            tsv = os.path.join(bundle, "ecotaxa_frames.tsv")
            re_ = h.run_cli(["segment", "-f", "ecotaxa", "-k", "2", "-o", tsv, frame],
                            socket=d.socket)
            f.check(re_.rc == 0, "segment ecotaxa: %r" % re_)
            raw = open(tsv, "rb").read() if os.path.exists(tsv) else b""
            f.check(raw.startswith(b"\xef\xbb\xbf"), "ecotaxa TSV starts with a UTF-8 BOM")
            lines = raw[3:].decode("utf-8").splitlines()
            head = lines[0].split("\t") if lines else []
            want_cols = ["img_file_name", "object_id", "object_frame", "object_annotation_category",
                         "object_annotation_status", "object_score", "object_bbox_x",
                         "object_bbox_y", "object_width", "object_height", "object_area",
                         "object_centroid_x", "object_centroid_y", "object_major", "object_minor",
                         "object_angle", "object_mean", "object_min", "object_category_2",
                         "object_score_2"]
            f.check(head == want_cols, "ecotaxa header: %r" % head)
            f.check(len(lines) > 1 and lines[1].split("\t") ==
                    ["[t]"] * 5 + ["[f]"] * 13 + ["[t]", "[f]"], "ecotaxa type row: %r" % lines[1:2])
            erows = [dict(zip(head, ln.split("\t"))) for ln in lines[2:]]
            f.check(len(erows) == len(ELLIPSES), "ecotaxa: %d rows for %d ellipses"
                    % (len(erows), len(ELLIPSES)))
            by_box = {(int(o[2]), int(o[3]), int(o[4]), int(o[5])): o for o in objs}
            for e in erows:
                box = tuple(int(e[k]) for k in ("object_bbox_x", "object_bbox_y", "object_width",
                                                "object_height"))
                o = by_box.get(box)
                if not f.check(o is not None, "ecotaxa row's box %r is a csv row's" % (box,)):
                    continue
                f.check(e["object_id"] == "frame1_%s" % o[1] and
                        e["img_file_name"] == e["object_id"] + ".png" and
                        e["object_frame"] == frame and e["object_annotation_status"] == "predicted"
                        and e["object_annotation_category"] == o[-2]
                        and abs(float(e["object_score"]) - float(o[-1])) <= 1e-6
                        and int(e["object_area"]) == int(o[6]), "ecotaxa row %r vs csv %r" % (e, o))
                crop = os.path.join(bundle, e["img_file_name"])
                same = (os.path.isfile(crop) and
                        open(crop, "rb").read() == open(os.path.join(crops, "frame1_%s.png" % o[1]),
                                                        "rb").read())
                f.check(same, "ecotaxa crop %s is the --save-crops crop of object %s" % (crop, o[1]))
            # the same frame twice: its ids are taken, that frame fails (exit 1), the TSV keeps one set
            rr = h.run_cli(["segment", "-f", "ecotaxa", "-o", tsv, frame, frame], socket=d.socket)
            n_rows = len(open(tsv, encoding="utf-8-sig").read().splitlines()) - 2
            f.check(rr.rc == 1 and "frame given twice" in rr.err and n_rows == len(ELLIPSES),
                    "frame twice in one TSV: %r, %d rows" % (rr, n_rows))
            rn = h.run_cli(["segment", "-f", "ecotaxa", "-o", os.path.join(tmp, "objects.tsv"),
                            frame], socket=d.socket)
            f.check(rn.rc == 2 and "ecotaxa*.tsv" in rn.err, "-o not named ecotaxa*.tsv: %r" % rn)
            # -j: frames in flight at once; rows still in input order (-u: as they come)
            many = []
            for k in range(6):
                q = os.path.join(tmp, "many", "f%d.png" % k)
                os.makedirs(os.path.dirname(q), exist_ok=True)
                write_png(q, img if k % 3 else np.full((64, 64), 255, np.uint8))
                many.append(q)
            r1 = h.run_cli(["segment", "-f", "csv", "-j", "1"] + many, socket=d.socket)
            r4 = h.run_cli(["segment", "-f", "csv", "-j", "4"] + many, socket=d.socket)
            ru4 = h.run_cli(["segment", "-f", "csv", "-j", "4", "-u"] + many, socket=d.socket)
            f.check(r1.rc == 0 and r4.rc == 0 and ru4.rc == 0, "-j 1 / 4 / 4 -u: %r %r %r"
                    % (r1, r4, ru4))
            f.check(len(r1.out.splitlines()) == 1 + 4 * len(ELLIPSES),
                    "-j 1: four frames with objects: %r" % r1.out[:200])
            f.check(r4.out == r1.out, "-j 4 writes -j 1's lines in the same (input) order")
            f.check(sorted(ru4.out.splitlines()) == sorted(r1.out.splitlines()),
                    "-j 4 -u writes the same lines")
            rj0 = h.run_cli(["segment", "-j", "0", frame], socket=d.socket)
            f.check(rj0.rc == 2 and "--jobs" in rj0.err, "-j 0 refused: %r" % rj0)
            # no object: no row, exit 0
            rw = h.run_cli(["segment", "-f", "csv", white], socket=d.socket)
            f.check(rw.rc == 0 and len(rw.out.splitlines()) == 1, "white frame: %r" % rw)
            # a bad file among good ones: exit 1, named, the others answered
            rb = h.run_cli(["segment", "-f", "csv", frame, bad, white], socket=d.socket)
            f.check(rb.rc == 1 and "bad.png" in rb.err and
                    len(rb.out.splitlines()) == 1 + len(ELLIPSES), "bad frame: %r" % rb)
            ru = h.run_cli(["segment"], socket=d.socket)
            f.check(ru.rc == 2, "no FRAME: %r" % ru)
            # --flat-field: sent once, kept by the daemon for the other frames
            flat = os.path.join(tmp, "flat.png")
            ff = np.full((H, W), 255, np.uint8)
            ff[:, W // 2:] = 50
            write_png(flat, ff)
            copy = os.path.join(tmp, "frame-copy.png")
            shutil.copy(frame, copy)
            rf = h.run_cli(["segment", "-f", "csv", "-j", "1", "--flat-field", flat, frame, copy, frame],
                           socket=d.socket)
            frows = list(csv.reader(io.StringIO(rf.out)))[1:]
            left = sorted(b for (cx, _, a, _), b in zip(ELLIPSES, boxes) if cx + a < W // 2)
            got = sorted((int(o[2]), int(o[3]), int(o[4]), int(o[5])) for o in frows)
            f.check(rf.rc == 0 and got == sorted(left * 3),
                    "--flat-field: 3 frames, each the %d left-half ellipses: %r (%r)"
                    % (len(left), got, rf))
            empty = os.path.join(tmp, "empty.png")
            open(empty, "wb").close()
            for bad_ff, needle in ((empty, "empty"), (os.path.join(tmp, "nope.png"), "nope.png")):
                rb_ = h.run_cli(["segment", "--flat-field", bad_ff, frame], socket=d.socket)
                f.check(rb_.rc == 2 and "--flat-field" in rb_.err and needle in rb_.err,
                        "--flat-field %s: %r" % (needle, rb_))
            sock = d.socket
        rd = h.run_cli(["--timeout", "2", "segment", frame], socket=sock)
        f.check(rd.rc == 3, "no daemon: %r" % rd)
    f.finish()


if __name__ == "__main__":
    main()
