"""plankton-client classify --format ecotaxa against a real planktond, with
every output checked by an importer written here from the rules EcoTaxa's
own importer applies (ecotaxa_back BO/Bundle.py and BO/TSVFile.py):

- only files named ecotaxa*.tsv anywhere under the bundle are read;
- a TSV is read as latin-1 unless it starts with a UTF-8 BOM;
- the header's names are taken lower case without surrounding blanks, each
  TABLE_FIELD with TABLE one of object, sample, acq, process, img; sample_*,
  acq_* and process_* columns need sample_id, acq_id, process_id;
- the second row gives each column's type, [t] or [f];
- fields are read with Python's csv module (tab, quote character '"');
- every row has an object_id, and an img_file_name found relative to the
  TSV's own folder, an image PIL opens; (object_id, img_file_name) is never
  repeated; and (our stronger rule, which EcoTaxa needs to keep one object
  per crop) no object_id is repeated;
- [f] values are numbers, object_lat in -90..90, object_lon in -180..180,
  object_date YYYYMMDD, object_time HHMM[SS], object_annotation_status one
  of predicted, validated, dubious.

The crops (PNG and JPEG made here: no data set needed) repeat names in
different folders (station1/img_0001.jpg, station2/img_0001.jpg,
station2/img_0001.png), have non-ASCII names, a quote, a name that is not
UTF-8, a tab. Covered: bundles with -o DIR/ecotaxa_NAME.tsv (crops outside
DIR hard-linked in under their object ids, a rerun, a conflicting file),
crops already inside DIR (named in place), standard output (relative to
the current folder, others refused), the ecotaxa*.tsv name rule, -k 3 and
--probs columns, --metadata (TSV and CSV, types, per-folder rows,
object_id given, every error), a path listed twice, and -f json staying
valid UTF-8 whatever the name's bytes."""
import csv
import glob
import io
import json
import os
import re
import shutil
import sys
import tempfile

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_harness as h  # noqa: E402

BOM = b"\xef\xbb\xbf"
PREFIXES = ("object", "sample", "acq", "process", "img")


# ---- the importer (EcoTaxa's rules, written out here) ----

def read_tsv(path):
    """(names, types, rows as dicts) of one TSV, decoded as EcoTaxa does."""
    raw = open(path, "rb").read()
    text = raw[3:].decode("utf-8") if raw.startswith(BOM) else raw.decode("latin-1")
    rdr = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quotechar='"')
    table = list(rdr)
    names = [n.strip(" \t").lower() for n in table[0]]
    return names, table[1], [dict(zip(names, row)) for row in table[2:]], table


def is_float(v):
    try:
        float(v)
        return True
    except ValueError:
        return False


def ecotaxa_import(bundle, f, what):
    """Imports every ecotaxa*.tsv under bundle by the rules above; returns
    {tsv path: rows}. Each broken rule is a failed check."""
    out = {}
    tsvs = [p for p in glob.glob(os.path.join(bundle, "**", "*"), recursive=True)
            if re.fullmatch(r"ecotaxa.*\.tsv", os.path.basename(p))]
    f.check(tsvs, "%s: the bundle %s holds an ecotaxa*.tsv" % (what, bundle))
    for tsv in tsvs:
        names, types, rows, table = read_tsv(tsv)
        where = "%s: %s" % (what, os.path.relpath(tsv, bundle))
        f.check(open(tsv, "rb").read(3) == BOM, "%s: starts with a UTF-8 BOM" % where)
        f.check(len(set(names)) == len(names), "%s: column names unique: %r" % (where, names))
        f.check(all(len(r) == len(names) for r in table), "%s: every row has %d cells" % (where, len(names)))
        f.check(len(types) == len(names) and all(t in ("[t]", "[f]") for t in types),
                "%s: type row %r" % (where, types))
        typ = dict(zip(names, types))
        for n in names:
            f.check("_" in n and n.split("_", 1)[0] in PREFIXES, "%s: column %r is TABLE_FIELD" % (where, n))
        for p in ("sample", "acq", "process"):
            if any(n.startswith(p + "_") for n in names):
                f.check(p + "_id" in names, "%s: %s_* columns come with %s_id" % (where, p, p))
        seen_ids, seen_pairs = set(), set()
        folder = os.path.dirname(tsv)
        for r in rows:
            oid, img = r.get("object_id", ""), r.get("img_file_name", "")
            f.check(oid != "", "%s: object_id given: %r" % (where, r))
            f.check(oid not in seen_ids, "%s: object_id %r unique" % (where, oid))
            f.check((oid, img) not in seen_pairs, "%s: (object_id, img_file_name) unique" % where)
            seen_ids.add(oid)
            seen_pairs.add((oid, img))
            full = os.path.join(folder, img)
            if f.check(img and not os.path.isabs(img) and os.path.isfile(full),
                       "%s: img_file_name %r is a file relative to the TSV's folder" % (where, img)):
                try:
                    Image.open(full).size
                except Exception as e:  # noqa: BLE001 (any decode failure is a failed import)
                    f.check(False, "%s: %r does not open as an image: %s" % (where, img, e))
            for n, v in r.items():
                if v == "":
                    continue
                if typ.get(n) == "[f]":
                    f.check(is_float(v), "%s: [f] column %s holds %r" % (where, n, v))
                if n == "object_lat":
                    f.check(is_float(v) and -90 <= float(v) <= 90, "%s: latitude %r" % (where, v))
                if n == "object_lon":
                    f.check(is_float(v) and -180 <= float(v) <= 180, "%s: longitude %r" % (where, v))
                if n == "object_date":
                    f.check(re.fullmatch(r"\d{8}", v) is not None, "%s: date %r" % (where, v))
                if n == "object_time":
                    f.check(re.fullmatch(r"\d{4}(\d{2})?", v) is not None, "%s: time %r" % (where, v))
                if n == "object_annotation_status":
                    f.check(v in ("predicted", "validated", "dubious"), "%s: status %r" % (where, v))
        out[tsv] = rows
    return out


# ---- crops ----

def crop(path, seed, size=(40, 30)):
    rng = np.random.default_rng(seed)
    w, hgt = size
    a = np.full((hgt, w), 255, np.uint8)
    a[hgt // 4:3 * hgt // 4, w // 4:3 * w // 4] = rng.integers(20, 120, (hgt // 2, w // 2))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(a).save(path, format="JPEG" if path.lower().endswith(".jpg") else "PNG")
    return path


def make_tree(root):
    """The crops, by path relative to root, with their sizes."""
    rel = {"station1/img_0001.jpg": (40, 30), "station2/img_0001.jpg": (52, 44),
           "station2/img_0001.png": (36, 60), "Zoé_station/crop_α 1.png": (48, 48),
           'station1/q"uote.png': (30, 30), "station2/deep/img_0002.png": (64, 40)}
    for i, (r, size) in enumerate(sorted(rel.items())):
        crop(os.path.join(root, r), i, size)
    with open(os.path.join(root, "station1", "notes.txt"), "w") as fh:
        fh.write("not a crop\n")
    return rel


def rows_by(rows, key):
    return {r[key]: r for r in rows}


def check_scores(f, rows, labels, k, what):
    """Within each row: object_score = the largest object_p_, the category its label, the
    k-1 extra categories and scores the next ones (where no near tie makes the order moot)."""
    for r in rows:
        p = np.array([float(r["object_p_" + re.sub(r"[^a-z0-9]", "_", lab.lower())]) for lab in labels])
        f.check(abs(p.sum() - 1) < 1e-4, "%s: probabilities sum to 1: %r" % (what, p.sum()))
        order = np.argsort(-p, kind="stable")
        f.check(abs(float(r["object_score"]) - p[order[0]]) < 1e-6, "%s: object_score %r" % (what, r))
        gaps = -np.diff(np.sort(p)[::-1])[:k]
        if np.all(gaps > 1e-4):
            f.check(r["object_annotation_category"] == labels[order[0]], "%s: category %r" % (what, r))
            for j in range(2, k + 1):
                f.check(r["object_category_%d" % j] == labels[order[j - 1]]
                        and abs(float(r["object_score_%d" % j]) - p[order[j - 1]]) < 1e-6,
                        "%s: rank %d %r" % (what, j, r))


def main():
    f = h.Failures("cli_ecotaxa")
    labels = h.model_classes()
    tmp = tempfile.mkdtemp(prefix="pc-cli-ecotaxa-")
    try:
        tree = os.path.join(tmp, "cruise")
        rel = make_tree(tree)
        want_ids = {r: r.replace("/", "__") for r in rel}  # the documented rule, on these names
        want_ids["station1/img_0001.jpg"] = "station1__img_0001.jpg"
        with h.Daemon() as d:
            # 1. a bundle beside the crops: -o BUNDLE/ecotaxa_NAME.tsv, crops linked in
            bundle = os.path.join(tmp, "bundle")
            tsv = os.path.join(bundle, "ecotaxa_cruise.tsv")
            r = h.run_cli(["classify", "-f", "ecotaxa", "-k", "3", "--probs", "-o", tsv, tree],
                          socket=d.socket)
            f.check(r.rc == 0 and r.out == "", "bundle: exit 0: %r" % r)
            f.check("skipped 1 file not named" in r.err and "notes.txt" in r.err,
                    "the skipped notes.txt is named: %r" % r.err)
            f.check("%d crops linked" % len(rel) in r.err, "bundle: says what it linked: %r" % r.err)
            got = ecotaxa_import(bundle, f, "bundle")
            rows = got.get(tsv, [])
            f.check(len(rows) == len(rel), "bundle: one row per crop: %d" % len(rows))
            ids = rows_by(rows, "object_id")
            f.check(set(ids) == set(want_ids.values()),
                    "bundle: object ids by the documented rule: %r vs %r" % (sorted(ids), sorted(want_ids.values())))
            f.check(len({want_ids[k] for k in ("station1/img_0001.jpg", "station2/img_0001.jpg",
                                                "station2/img_0001.png")}) == 3,
                    "repeated names in different folders give three ids")
            for rp, oid in want_ids.items():
                row = ids.get(oid)
                if not f.check(row is not None, "bundle: row for %s" % rp):
                    continue
                f.check(row["img_file_name"] == oid, "bundle: the crop is named by its id: %r" % row)
                src, dst = os.path.join(tree, rp), os.path.join(bundle, row["img_file_name"])
                f.check(os.path.exists(dst) and os.stat(src).st_ino == os.stat(dst).st_ino,
                        "bundle: %s hard-linked (same file system)" % rp)
                f.check((int(row["object_width"]), int(row["object_height"])) == rel[rp],
                        "bundle: size of %s: %r" % (rp, row))
            names, types, _, _ = read_tsv(tsv)
            head = ["img_file_name", "object_id", "object_annotation_category", "object_annotation_status",
                    "object_width", "object_height", "object_score", "object_category_2", "object_score_2",
                    "object_category_3", "object_score_3"]
            f.check(names[:len(head)] == head and types[:len(head)] == ["[t]"] * 4 + ["[f]"] * 3 + ["[t]", "[f]"] * 2,
                    "-k 3: the extra ranks as columns: %r %r" % (names, types))
            f.check(names[len(head):] == ["object_p_" + re.sub(r"[^a-z0-9]", "_", lab.lower()) for lab in labels],
                    "--probs columns: %r" % names[len(head):])
            check_scores(f, rows, labels, 3, "bundle")

            # a rerun into the same bundle: the links are there already, same rows
            r = h.run_cli(["classify", "-f", "ecotaxa", "-k", "3", "--probs", "-o", tsv, tree],
                          socket=d.socket)
            again = ecotaxa_import(bundle, f, "rerun").get(tsv, [])
            f.check(r.rc == 0 and sorted(x["object_id"] for x in again) == sorted(ids), "rerun: %r" % r)
            # another file where a crop's copy goes: that crop fails, the rest is written
            other = os.path.join(tmp, "bundle2")
            os.makedirs(other)
            crop(os.path.join(other, "station1__img_0001.jpg"), 99)
            r = h.run_cli(["classify", "-f", "ecotaxa", "-o", os.path.join(other, "ecotaxa_x.tsv"), tree],
                          socket=d.socket)
            f.check(r.rc == 1 and "station1__img_0001.jpg" in r.err and "another file" in r.err
                    and "1 of %d files failed" % len(rel) in r.err, "conflicting file in the bundle: %r" % r)
            rows2 = ecotaxa_import(other, f, "conflict").get(os.path.join(other, "ecotaxa_x.tsv"), [])
            f.check(len(rows2) == len(rel) - 1, "conflict: the other rows are written: %d" % len(rows2))

            # 2. the TSV inside the crops' folder: crops named in place, nothing linked
            inplace = os.path.join(tree, "ecotaxa_inplace.tsv")
            r = h.run_cli(["classify", "-f", "ecotaxa", "-o", inplace, tree], socket=d.socket)
            f.check(r.rc == 0 and "linked" not in r.err, "in place: %r" % r)
            rows = ecotaxa_import(tree, f, "in place").get(inplace, [])
            f.check(sorted(x["img_file_name"] for x in rows) == sorted(rel),
                    "in place: img_file_name relative to the TSV: %r" % [x["img_file_name"] for x in rows])
            f.check(sorted(x["object_id"] for x in rows) == sorted(want_ids.values()), "in place: same ids")
            os.unlink(inplace)

            # 3. standard output: relative to the current folder; crops elsewhere refused
            r = h.run_cli(["classify", "-f", "ecotaxa", "."], socket=d.socket, cwd=tree)
            f.check(r.rc == 0, "stdout in the crops' folder: %r" % r)
            with open(os.path.join(tree, "ecotaxa_stdout.tsv"), "w", encoding="utf-8", newline="") as fh:
                fh.write(r.out)
            rows = ecotaxa_import(tree, f, "stdout").get(os.path.join(tree, "ecotaxa_stdout.tsv"), [])
            f.check(sorted(x["img_file_name"] for x in rows) == sorted(rel), "stdout: relative names")
            os.unlink(os.path.join(tree, "ecotaxa_stdout.tsv"))
            r = h.run_cli(["classify", "-f", "ecotaxa", tree], socket=d.socket, cwd=tmp + "/bundle")
            f.check(r.rc == 1 and "not under the current folder" in r.err and "-o DIR/ecotaxa_NAME.tsv" in r.err,
                    "stdout, crops elsewhere: refused with the way out: %r" % r)

            # the name rule
            for bad in ("results.tsv", "ecotaxa_run.txt", "my_ecotaxa.tsv"):
                r = h.run_cli(["classify", "-f", "ecotaxa", "-o", os.path.join(tmp, "b3", bad), tree],
                              socket=d.socket)
                f.check(r.rc == 2 and "ecotaxa*.tsv" in r.err and not os.path.exists(os.path.join(tmp, "b3")),
                        "-o %s refused before anything is made: %r" % (bad, r))

            # a path listed twice: the second gets no second object
            one = os.path.join(tree, "station1", "img_0001.jpg")
            b4 = os.path.join(tmp, "b4")
            r = h.run_cli(["classify", "-f", "ecotaxa", "-o", os.path.join(b4, "ecotaxa_t.tsv"), "-"],
                          socket=d.socket, stdin=one + "\n" + one + "\n")
            f.check(r.rc == 1 and "taken by an earlier row" in r.err, "a path twice: %r" % r)
            f.check(len(ecotaxa_import(b4, f, "twice").get(os.path.join(b4, "ecotaxa_t.tsv"), [])) == 1,
                    "a path twice: one row")

            # a path list (find | classify -): ids below --id-root, else below the current folder
            listing = "".join(os.path.join(tree, p) + "\n" for p in sorted(rel))
            b7 = os.path.join(tmp, "b7")
            r = h.run_cli(["classify", "-f", "ecotaxa", "--id-root", tree, "-o", os.path.join(b7, "ecotaxa_l.tsv"),
                           "-"], socket=d.socket, stdin=listing, cwd=tmp)
            rows = ecotaxa_import(b7, f, "--id-root").get(os.path.join(b7, "ecotaxa_l.tsv"), [])
            f.check(r.rc == 0 and sorted(x["object_id"] for x in rows) == sorted(want_ids.values()),
                    "--id-root: ids below it: %r %r" % (r, [x["object_id"] for x in rows]))
            b8 = os.path.join(tmp, "b8")
            r = h.run_cli(["classify", "-f", "ecotaxa", "-o", os.path.join(b8, "ecotaxa_l.tsv"), "-"],
                          socket=d.socket, stdin=listing, cwd=tmp)
            rows = ecotaxa_import(b8, f, "- in tmp").get(os.path.join(b8, "ecotaxa_l.tsv"), [])
            f.check(r.rc == 0 and sorted(x["object_id"] for x in rows) == sorted("cruise__" + v for v in want_ids.values()),
                    "-: ids below the current folder: %r" % [x["object_id"] for x in rows])
            for bad, why in ((os.path.join(tmp, "nope"), "No such file or directory"), (one, "not a folder")):
                r = h.run_cli(["classify", "-f", "ecotaxa", "--id-root", bad, tree], socket=d.socket)
                f.check(r.rc == 2 and "--id-root %s: %s" % (bad, why) in r.err, "--id-root %s: %r" % (bad, r))

            # names EcoTaxa's TSV cannot hold, and names that are not UTF-8
            odd = os.path.join(tmp, "odd")
            crop(os.path.join(odd, "tab\tname.png"), 7)
            crop(os.path.join(odd, "fine.png"), 8)
            bad_utf8 = os.path.join(odd.encode(), b"caf\xe9.png")
            shutil.copyfile(os.path.join(odd, "fine.png"), bad_utf8)
            r = h.run_cli(["classify", "-f", "ecotaxa", "-o", os.path.join(odd, "ecotaxa_odd.tsv"), odd],
                          socket=d.socket, binary=True)
            err = r.err.decode("utf-8", "replace")
            f.check(r.rc == 1 and "tab\tname.png: the file name holds a tab" in err
                    and "is not UTF-8" in err, "tab and non-UTF-8 names in place: %r" % r)
            rows = ecotaxa_import(odd, f, "odd").get(os.path.join(odd, "ecotaxa_odd.tsv"), [])
            f.check([x["img_file_name"] for x in rows] == ["fine.png"], "odd: the good one written: %r" % rows)
            os.unlink(os.path.join(odd, "ecotaxa_odd.tsv"))
            b5 = os.path.join(tmp, "b5")
            r = h.run_cli(["classify", "-f", "ecotaxa", "-o", os.path.join(b5, "ecotaxa_odd.tsv"), odd],
                          socket=d.socket, binary=True)
            rows = ecotaxa_import(b5, f, "odd bundle").get(os.path.join(b5, "ecotaxa_odd.tsv"), [])
            f.check(r.rc == 1 and sorted(x["object_id"] for x in rows) == ["caf%E9.png", "fine.png"],
                    "odd bundle: the non-UTF-8 name linked under its escaped id: %r %r" % (r, rows))

            # -f json: valid UTF-8 whatever the bytes, path_bytes gives them back
            r = h.run_cli(["classify", "-f", "json", bad_utf8, os.path.join(odd, "fine.png")],
                          socket=d.socket, binary=True)
            try:
                objs = [json.loads(line) for line in r.out.decode("utf-8").splitlines()]
            except (UnicodeDecodeError, ValueError) as e:
                objs = []
                f.check(False, "json is valid UTF-8 JSON: %s: %r" % (e, r.out))
            f.check(r.rc == 0 and len(objs) == 2, "json with a non-UTF-8 name: %r" % r)
            if len(objs) == 2:
                f.check(objs[0]["path"] == os.path.join(odd, "caf\ufffd.png")
                        and re.sub(rb"%([0-9A-F]{2})", lambda m: bytes([int(m.group(1), 16)]),
                                   objs[0]["path_bytes"].encode()) == bad_utf8,
                        "json: U+FFFD in path, the bytes in path_bytes: %r" % objs[0])
                f.check("path_bytes" not in objs[1], "json: no path_bytes for a UTF-8 name")

            check_metadata(f, d, tmp, tree, rel, want_ids)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    f.finish()


def check_metadata(f, d, tmp, tree, rel, want_ids):
    """--metadata: per-crop and per-folder rows, types, object_id given, the errors."""
    meta = os.path.join(tree, "metadata.tsv")
    with open(meta, "w", encoding="utf-8") as fh:
        fh.write("path\tobject_lat\tobject_lon\tobject_depth_min\tobject_date\tobject_time\t"
                 "sample_id\tsample_station\tacq_id\tacq_instrument\n")
        fh.write("station1\t43.6841\t7.3161\t5\t20260314\t0930\tcast-1\tpoint B\tacq1\tZooCam\n")
        fh.write("station2\t-12.5\t-170.25\t120.5\t20260315\t231505\tcast-2\tfar\tacq1\tZooCam\n")
        fh.write("station2/img_0001.png\t-12.75\t-170.5\t200\t20260315\t231510\tcast-2\tfar\tacq2\tZooCam\n")
        fh.write("Zoé_station\t0\t0\t1\t20260316\t1200\tcast-3\tÉquateur\tacq1\tZooCam\n")
    bundle = os.path.join(tmp, "meta_bundle")
    tsv = os.path.join(bundle, "ecotaxa_meta.tsv")
    r = h.run_cli(["classify", "-f", "ecotaxa", "--metadata", meta, "-o", tsv, tree], socket=d.socket)
    f.check(r.rc == 0, "--metadata: %r" % r)
    names, types, rows, _ = read_tsv(tsv) if os.path.exists(tsv) else ([], [], [], [])
    ecotaxa_import(bundle, f, "metadata")
    typ = dict(zip(names, types))
    f.check({k: typ.get(k) for k in ("object_lat", "object_lon", "object_depth_min", "object_date",
                                      "object_time", "sample_id", "sample_station", "acq_id")}
            == {"object_lat": "[f]", "object_lon": "[f]", "object_depth_min": "[f]", "object_date": "[t]",
                "object_time": "[t]", "sample_id": "[t]", "sample_station": "[t]", "acq_id": "[t]"},
            "--metadata: types inferred: %r" % typ)
    by = rows_by(rows, "object_id")
    want = {"station1__img_0001.jpg": ("43.6841", "7.3161", "5", "20260314", "0930", "cast-1", "acq1"),
            "station2__img_0001.jpg": ("-12.5", "-170.25", "120.5", "20260315", "231505", "cast-2", "acq1"),
            "station2__img_0001.png": ("-12.75", "-170.5", "200", "20260315", "231510", "cast-2", "acq2"),
            "station2__deep__img_0002.png": ("-12.5", "-170.25", "120.5", "20260315", "231505", "cast-2", "acq1"),
            "Zoé_station__crop_α 1.png": ("0", "0", "1", "20260316", "1200", "cast-3", "acq1")}
    for oid, vals in want.items():
        row = by.get(oid, {})
        got = tuple(row.get(k) for k in ("object_lat", "object_lon", "object_depth_min", "object_date",
                                          "object_time", "sample_id", "acq_id"))
        f.check(got == vals, "--metadata round trip for %s: %r vs %r" % (oid, got, vals))
    f.check(by.get("Zoé_station__crop_α 1.png", {}).get("sample_station") == "Équateur",
            "--metadata: non-ASCII value read back as UTF-8")

    # CSV with a type row, quotes, and object_id given by the caller
    csvm = os.path.join(tmp, "ids.csv")
    with open(csvm, "w", encoding="utf-8") as fh:
        fh.write("path,object_id,object_lat,object_comment\n")
        fh.write("[t],[t],[f],[t]\n")
        fh.write('cruise/station1/img_0001.jpg,lab-0001,10.5,"a comma, and ""quotes"""\n')
        fh.write("cruise,,,\n")
    b2 = os.path.join(tmp, "meta_bundle2")
    r = h.run_cli(["classify", "-f", "ecotaxa", "--metadata", csvm, "-o", os.path.join(b2, "ecotaxa_m.tsv"),
                   os.path.join(tree, "station1")], socket=d.socket)
    names, types, rows, _ = read_tsv(os.path.join(b2, "ecotaxa_m.tsv")) if r.rc == 0 else ([], [], [], [])
    ecotaxa_import(b2, f, "csv metadata")
    by = rows_by(rows, "object_id")
    f.check(r.rc == 0 and "lab-0001" in by and by["lab-0001"]["object_comment"] == 'a comma, and "quotes"'
            and by["lab-0001"]["object_lat"] == "10.5" and dict(zip(names, types)).get("object_comment") == "[t]",
            "CSV metadata, object_id given: %r %r" % (r, rows))
    f.check(names.count("object_id") == 1, "object_id once: %r" % names)

    # errors: each names the file, the line and the column; exit 2 before anything is sent
    cases = [("path\tfoo\n", "foo", ":1:"), ("path\tobject_lat\nstation1\t123\n", "object_lat", ":2:"),
             ("path\tsample_station\nstation1\tx\n", "sample_id", ":1:"),
             ("path\tobject_lat\tobject_lon\nstation1\t1\n", "cells", ":2:"),
             ("path\tobject_date\nstation1\t2026-03-14\n", "YYYYMMDD", ":2:"),
             ("path\tobject_time\nstation1\t9h30\n", "HHMM", ":2:"),
             ("path\tobject_depth_min\n[t]\t[x]\n", "type row", ":2:"),
             ("path\tobject_n\n[t]\t[f]\nstation1\tdeep\n", "not a number", ":3:"),
             ("path\tobject_score\nstation1\t1\n", "written by classify", ":1:"),
             ("path\tobject_a\nstation1\t1\nstation1/\t2\n", "has a row already", ":3:"),
             ("object_lat\n1\n", "key column", ":1:")]
    for i, (text, needle, line) in enumerate(cases):
        bad = os.path.join(tree, "bad%d.tsv" % i)
        with open(bad, "w") as fh:
            fh.write(text)
        r = h.run_cli(["classify", "-f", "ecotaxa", "--metadata", bad, "-o", os.path.join(tmp, "nb", "ecotaxa_x.tsv"),
                       tree], socket=d.socket)
        f.check(r.rc == 2 and needle in r.err and bad + line in r.err,
                "--metadata error %r: exit 2 naming %r at %s: %r" % (text, needle, line, r))
        os.unlink(bad)
    # a crop the table has no row for
    part = os.path.join(tmp, "part.tsv")
    with open(part, "w") as fh:
        fh.write("path\tobject_a\ncruise/station1\t1\n")
    r = h.run_cli(["classify", "-f", "ecotaxa", "--metadata", part, "-o", os.path.join(tmp, "b6", "ecotaxa_p.tsv"),
                   tree], socket=d.socket)
    f.check(r.rc == 1 and "has no row for it" in r.err, "crop without a metadata row: %r" % r)
    r = h.run_cli(["classify", "-f", "csv", "--metadata", part, tree], socket=d.socket)
    f.check(r.rc == 2 and "--format ecotaxa" in r.err, "--metadata without ecotaxa: %r" % r)


if __name__ == "__main__":
    main()
