"""plankton-client classify against a real planktond (tiny random-weight
model) on real NDSB crops: every line of every format is checked against
the engine's own probabilities (planktond-model run), the json and ecotaxa
outputs parse back, the csv --probs header is the model's class order,
input order holds with a small window and repeated paths on stdin,
completion order gives the same lines, TTA matches the engine's TTA, and
--model picks or refuses a model. Exit 77 without the data."""
import csv
import io
import json
import os
import random
import shutil
import sys
import tempfile

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_harness as h  # noqa: E402

TOL = 2e-5
CLASSES = ["amphipods", "copepod_calanoid", "fecal_pellet", "protist_other"]


def stream_paths(socket, paths, bound_s=60):
    """Feeds classify -j 64 one path at a time on a pipe kept open and reads
    the answer's csv row before writing the next path. Returns the paths of
    the rows read in time (a row that does not come within bound_s ends it)."""
    import select
    import subprocess
    import time
    cmd = [h.env("PLANKTON_CLIENT"), "--socket", socket, "classify", "-j", "64", "-f", "csv", "-"]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    fd, buf, got = p.stdout.fileno(), b"", []

    def next_row():
        nonlocal buf
        end = time.monotonic() + bound_s
        while True:
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if not line.startswith(b"path,"):
                    return line.decode()
            left = end - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            buf += chunk

    try:
        for path in paths:
            p.stdin.write((path + "\n").encode())
            p.stdin.flush()
            row = next_row()
            if row is None:
                return got
            got.append(row.split(",")[0])
        p.stdin.close()
        p.wait(timeout=bound_s)
        return got if p.returncode == 0 else got + ["exit %s" % p.returncode]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def near_tie(row, k):
    """True when the k-th and (k+1)-th largest are too close to order reliably."""
    s = np.sort(row)[::-1]
    return any(s[i] - s[i + 1] < 1e-4 for i in range(min(k, len(s) - 1)))


def main():
    f = h.Failures("cli_classify")
    labels = h.model_classes()
    tmp = tempfile.mkdtemp(prefix="pc-cli-classify-")
    try:
        tree = os.path.join(tmp, "crops")
        paths = h.make_tree(tree, CLASSES, 3)
        # a nested folder, and files the walk must skip
        sub = os.path.join(tree, "copepod_calanoid", "sub")
        os.makedirs(sub)
        shutil.copyfile(paths[0], os.path.join(sub, "nested.jpg"))
        shutil.copyfile(paths[0], os.path.join(tree, "amphipods", ".hidden.jpg"))
        with open(os.path.join(tree, "notes.txt"), "w") as fh:
            fh.write("not an image\n")
        # a name that csv must quote and json escape
        odd = os.path.join(tree, "fecal_pellet", 'odd, "name".jpg')
        shutil.copyfile(paths[1], odd)
        paths = sorted(paths + [os.path.join(sub, "nested.jpg"), odd])
        ref = h.engine_probs(paths)
        sizes = [Image.open(p).size for p in paths]
        top = [labels[int(np.argmax(r))] for r in ref]

        with h.Daemon() as d:
            # csv --probs: header in class order, every probability
            r = h.run_cli(["classify", "-f", "csv", "--probs", tree], socket=d.socket)
            f.check(r.rc == 0 and r.err == "plankton-client: classify: skipped 1 file not named *.png, "
                    "*.jpg, *.jpeg, *.tif or *.tiff (%s)\n" % os.path.join(tree, "notes.txt"),
                    "csv --probs runs cleanly, naming the file it skipped (not the hidden one): %r" % r)
            rows = list(csv.reader(io.StringIO(r.out)))
            f.check(rows and rows[0] == ["path"] + labels, "csv --probs header: %r" % rows[:1])
            f.check([row[0] for row in rows[1:]] == paths,
                    "csv rows in walk order, image files only: %r" % [row[0] for row in rows[1:]])
            for i, row in enumerate(rows[1:len(paths) + 1]):
                got = np.array([float(x) for x in row[1:]], dtype=np.float64)
                f.check(got.shape == (len(labels),) and np.max(np.abs(got - ref[i])) <= TOL,
                        "%s: probabilities %s vs engine %s" % (row[0], got, ref[i]))
                f.check(abs(got.sum() - 1) < 1e-4, "%s: sum %g" % (row[0], got.sum()))

            # table (default): PATH  LABEL P
            r = h.run_cli(["classify", tree], socket=d.socket)
            lines = r.out.splitlines()
            f.check(r.rc == 0 and len(lines) == len(paths), "table: one line per image: %r" % r)
            for i, line in enumerate(lines[:len(paths)]):
                parts = line.rsplit(None, 2)
                f.check(len(parts) == 3 and parts[0] == paths[i], "table line %r" % line)
                if len(parts) == 3 and not near_tie(ref[i], 1):
                    f.check(parts[1] == top[i], "table %s: %s, engine says %s" % (paths[i], parts[1], top[i]))
                    f.check(abs(float(parts[2]) - ref[i].max()) <= 1e-4 + TOL, "table prob %r" % line)

            # csv and tsv headers with k = 1 and k = 2
            r = h.run_cli(["classify", "-f", "csv", tree], socket=d.socket)
            rows = list(csv.reader(io.StringIO(r.out)))
            f.check(rows[0] == ["path", "label", "probability"], "csv header %r" % rows[0])
            for i, row in enumerate(rows[1:]):
                if not near_tie(ref[i], 1):
                    f.check(row[1] == top[i] and abs(float(row[2]) - ref[i].max()) <= TOL, "csv row %r" % row)
            r = h.run_cli(["classify", "-f", "tsv", "-k", "2", tree], socket=d.socket)
            rows = [line.split("\t") for line in r.out.splitlines()]
            f.check(rows[0] == ["path", "label_1", "probability_1", "label_2", "probability_2"],
                    "tsv -k 2 header %r" % rows[0])
            f.check(all(len(row) == 5 for row in rows), "tsv rows have 5 columns")

            # json -k 3 --probs: parses back, top 3 as the engine ranks them
            r = h.run_cli(["classify", "-f", "json", "-k", "3", "--probs", tree], socket=d.socket)
            f.check(r.rc == 0, "json: %r" % r)
            objs = [json.loads(line) for line in r.out.splitlines()]
            f.check([o["path"] for o in objs] == paths, "json paths in order")
            for i, o in enumerate(objs[:len(paths)]):
                f.check(list(o["probabilities"].keys()) == labels, "json probabilities in class order")
                got = np.array([o["probabilities"][lab] for lab in labels])
                f.check(np.max(np.abs(got - ref[i])) <= TOL, "json %s probabilities" % o["path"])
                f.check(len(o["top"]) == 3 and o["model"] == "daemon-tiny", "json top/model %r" % o)
                if not near_tie(ref[i], 3):
                    want = [labels[j] for j in np.argsort(-ref[i], kind="stable")[:3]]
                    f.check([t["label"] for t in o["top"]] == want, "json top-3 %r vs %r" % (o["top"], want))
                    f.check(o["label"] == want[0] and [t["index"] for t in o["top"]] == [labels.index(w) for w in want],
                            "json label/index %r" % o)
                f.check((o.get("width"), o.get("height")) == sizes[i], "json size %r vs %r" % (o, sizes[i]))

            # ecotaxa: EcoTaxa's TSV on standard output, run in the folder above the tree
            # (img_file_name is relative to where the TSV sits; test_cli_ecotaxa imports bundles)
            r = h.run_cli(["classify", "-f", "ecotaxa", "--probs", "crops"], socket=d.socket, cwd=tmp)
            f.check(r.rc == 0 and r.out.startswith("\ufeff"), "ecotaxa: BOM first: %r" % r)
            rows = list(csv.reader(io.StringIO(r.out.lstrip("\ufeff")), delimiter="\t", quotechar='"'))
            head = ["img_file_name", "object_id", "object_annotation_category",
                    "object_annotation_status", "object_width", "object_height", "object_score"]
            f.check(rows[0] == head + ["object_p_" + lab for lab in labels], "ecotaxa header %r" % rows[0])
            f.check(rows[1] == ["[t]"] * 4 + ["[f]"] * (3 + len(labels)), "ecotaxa type row %r" % rows[1])
            f.check(len(rows) == 2 + len(paths), "ecotaxa row count %d" % len(rows))
            for i, row in enumerate(rows[2:]):
                rec = dict(zip(rows[0], row))
                below = os.path.relpath(paths[i], tree)
                f.check(rec["img_file_name"] == os.path.join("crops", below), "ecotaxa path %r" % row)
                f.check(rec["object_id"] == below.replace("/", "__"), "object_id %r" % row)
                f.check(rec["object_annotation_status"] == "predicted", "status %r" % row)
                f.check((int(rec["object_width"]), int(rec["object_height"])) == sizes[i], "size %r" % row)
                f.check(abs(float(rec["object_score"]) - ref[i].max()) <= TOL, "score %r" % row)
                if not near_tie(ref[i], 1):
                    f.check(rec["object_annotation_category"] == top[i], "category %r vs %s" % (row, top[i]))
                got = np.array([float(rec["object_p_" + lab]) for lab in labels])
                f.check(np.max(np.abs(got - ref[i])) <= TOL, "ecotaxa probabilities %r" % row)

            # stdin list, repeated and shuffled, window 3: lines in input order
            order = paths * 3
            random.Random(5).shuffle(order)
            r = h.run_cli(["classify", "-j", "3", "-f", "csv", "-"], socket=d.socket,
                          stdin="".join(p + "\n" for p in order))
            got = [row[0] for row in list(csv.reader(io.StringIO(r.out)))[1:]]
            f.check(r.rc == 0 and got == order, "stdin list: lines in input order: %r" % r)
            r2 = h.run_cli(["classify", "-j", "7", "-u", "-f", "csv", "-"], socket=d.socket,
                           stdin="".join(p + "\n" for p in order))
            # (the last digits may differ: batches form differently from run to run)
            rows2 = sorted(list(csv.reader(io.StringIO(r2.out)))[1:])
            f.check(r2.rc == 0 and [row[0] for row in rows2] == sorted(order),
                    "completion order: every input once: %r" % r2)
            for row in rows2:
                i = paths.index(row[0])
                f.check(abs(float(row[2]) - ref[i].max()) <= TOL, "completion order row %r" % row)

            # a path list that trickles in (a camera's crops, `inotifywait | classify -`):
            # each answer is written while stdin stays open, before the next path comes
            streamed = stream_paths(d.socket, paths[:4])
            f.check(streamed == paths[:4], "stdin trickle: each line out before the next path: %r"
                    % (streamed,))

            # -o FILE, --model by name
            out = os.path.join(tmp, "out.csv")
            r = h.run_cli(["classify", "--model", "daemon-tiny", "-f", "csv", "-o", out, paths[0]],
                          socket=d.socket)
            f.check(r.rc == 0 and r.out == "" and open(out).read().startswith("path,label,probability\n"),
                    "-o FILE: %r" % r)
            r = h.run_cli(["classify", "--model", "no-such-model", paths[0]], socket=d.socket)
            f.check(r.rc == 2 and "no-such-model" in r.err and "daemon-tiny" in r.err,
                    "unknown --model: exit 2 naming it and the served one: %r" % r)

            # --tta 4: the engine's own TTA average
            few = paths[:4]
            ref_tta = h.engine_probs(few, tta=4)
            r = h.run_cli(["classify", "--tta", "4", "-f", "csv", "--probs"] + few, socket=d.socket)
            rows = list(csv.reader(io.StringIO(r.out)))[1:]
            f.check(r.rc == 0 and len(rows) == len(few), "--tta 4: %r" % r)
            for i, row in enumerate(rows):
                got = np.array([float(x) for x in row[1:]])
                f.check(np.max(np.abs(got - ref_tta[i])) <= TOL,
                        "--tta 4 %s: %s vs engine %s" % (row[0], got, ref_tta[i]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    f.finish()


if __name__ == "__main__":
    main()
