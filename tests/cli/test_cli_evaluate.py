"""plankton-client evaluate against a real planktond on real NDSB crops:
its accuracy, top-5, log loss (clipped to [1e-15, 1-1e-15], rows
renormalised), per-class precision/recall/F1, macro F1, F1a and confusion
matrix equal a direct computation over `classify -f csv --probs` output of
the same tree; a class folder the model does not know is reported, not
sent; a tree with only unknown labels, and a missing DIR, give clear
messages and exit codes. Exit 77 without the data."""
import csv
import io
import json
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_harness as h  # noqa: E402

KNOWN = ["amphipods", "copepod_calanoid", "fecal_pellet", "protist_other", "tunicate_doliolid"]
UNKNOWN = "shrimp_zoea"
CLIP = 1e-15


def direct_metrics(rows, labels):
    """Metrics from (true label, probability row) pairs, written out here
    independently of models/pd_eval."""
    nc = len(labels)
    y = np.array([labels.index(t) for t, _ in rows])
    p = np.array([r for _, r in rows], dtype=np.float64)
    pred = np.argmax(p, axis=1)
    # rank of the true class: by probability descending, then index ascending
    ranks = np.array([int(np.sum((p[i] > p[i, y[i]]) | ((p[i] == p[i, y[i]]) & (np.arange(nc) < y[i]))))
                      for i in range(len(y))])
    q = np.clip(p, CLIP, 1 - CLIP)
    q /= q.sum(axis=1, keepdims=True)
    conf = np.zeros((nc, nc), dtype=np.int64)
    for t, pr in zip(y, pred):
        conf[t, pr] += 1
    per = {}
    f1s = []
    for c in range(nc):
        tp, support, predicted = conf[c, c], conf[c].sum(), conf[:, c].sum()
        prec = tp / predicted if predicted else 0.0
        rec = tp / support if support else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per[labels[c]] = (int(support), int(predicted), prec, rec, f1)
        if support:
            f1s.append(f1)
    return {
        "scored": len(y), "accuracy": float(np.mean(pred == y)), "top5": float(np.mean(ranks < 5)),
        "log_loss": float(-np.mean(np.log(q[np.arange(len(y)), y]))),
        "macro_f1": float(np.mean(f1s)), "f1a": float(np.mean(np.array(f1s) > 0.5)),
        "per": per, "conf": conf,
    }


def main():
    f = h.Failures("cli_evaluate")
    labels = h.model_classes()
    if UNKNOWN in labels:
        raise SystemExit("test premise: %s must not be a class of the test model" % UNKNOWN)
    tmp = tempfile.mkdtemp(prefix="pc-cli-evaluate-")
    try:
        # A random-weight model is rarely right on the true labels, so the
        # folders here are chosen so that the metrics are not all zero: half
        # of the crops go under the class the engine predicts for them, half
        # under the next class.
        pool = h.make_tree(os.path.join(tmp, "pool"), KNOWN, 4)
        ref = h.engine_probs(pool)
        tree = os.path.join(tmp, "labelled")
        for i, path in enumerate(pool):
            best = int(np.argmax(ref[i]))
            label = labels[best if i % 2 == 0 else (best + 1) % len(labels)]
            os.makedirs(os.path.join(tree, label), exist_ok=True)
            shutil.copyfile(path, os.path.join(tree, label, "%02d_%s" % (i, os.path.basename(path))))
        h.make_tree(tree, [UNKNOWN], 2)
        # what evaluate leaves out, and says so: a file at the top, a folder inside a
        # class folder, a file with another name
        first = sorted(os.listdir(tree))[0]
        shutil.copyfile(pool[0], os.path.join(tree, "loose.jpg"))
        os.makedirs(os.path.join(tree, first, "sub"))
        shutil.copyfile(pool[0], os.path.join(tree, first, "sub", "deeper.jpg"))
        with open(os.path.join(tree, first, "notes.txt"), "w") as fh:
            fh.write("not a crop\n")
        with h.Daemon() as d:
            r = h.run_cli(["classify", "-f", "csv", "--probs", tree], socket=d.socket)
            f.check(r.rc == 0, "classify --probs: %r" % r)
            table = list(csv.reader(io.StringIO(r.out)))
            rows = []
            for row in table[1:]:
                label = os.path.basename(os.path.dirname(row[0]))
                if label in labels:
                    rows.append((label, [float(x) for x in row[1:]]))
            want = direct_metrics(rows, labels)

            conf_path = os.path.join(tmp, "confusion.csv")
            r = h.run_cli(["evaluate", "--json", "--confusion", conf_path, "-j", "5", tree],
                          socket=d.socket)
            f.check(r.rc == 0, "evaluate --json: %r" % r)
            got = json.loads(r.out)
            f.check(got["scored"] == want["scored"] == 4 * len(KNOWN), "scored %r" % got["scored"])
            f.check(0 < got["accuracy"] < 1 and got["macro_f1"] > 0, "non-trivial metrics %r" % got)
            f.check(got["images"] == 4 * len(KNOWN) + 2 and got["failed"] == 0, "images/failed %r" % got)
            f.check(got["unknown"] == 2 and got["unknown_labels"] == {UNKNOWN: 2},
                    "unknown labels reported: %r" % got["unknown_labels"])
            f.check(got["model"] == "daemon-tiny", "model %r" % got["model"])
            f.check(got.get("left_out") == {"top_files": 1, "subfolders": 1, "other_files": 1},
                    "left out, in the JSON: %r" % got.get("left_out"))
            f.check("left out of %s: 1 file at the top (not in a class folder) (loose.jpg); 1 folder "
                    "inside a class folder (%s/sub); 1 file not named *.png, *.jpg, *.jpeg, *.tif or *.tiff "
                    "(%s/notes.txt)" % (tree, first, first) in r.err, "left out, on stderr: %r" % r.err)
            for k in ("accuracy", "top5", "macro_f1", "f1a"):
                f.check(abs(got[k] - want[k]) < 1e-12, "%s: evaluate %r, direct %r" % (k, got[k], want[k]))
            # the two runs may batch differently: the last float digits may differ
            f.check(abs(got["log_loss"] - want["log_loss"]) < 1e-5,
                    "log loss: evaluate %r, direct %r" % (got["log_loss"], want["log_loss"]))
            f.check([c["label"] for c in got["classes"]] == labels, "classes in model order")
            for c in got["classes"]:
                support, predicted, prec, rec, f1 = want["per"][c["label"]]
                f.check(c["support"] == support and c["predicted"] == predicted, "per-class counts %r" % c)
                f.check(abs(c["precision"] - prec) < 1e-12 and abs(c["recall"] - rec) < 1e-12
                        and abs(c["f1"] - f1) < 1e-12, "per-class P/R/F1 %r vs %r" % (c, want["per"][c["label"]]))
            conf = list(csv.reader(open(conf_path)))
            f.check(conf[0] == ["true\\predicted"] + labels, "confusion header %r" % conf[0])
            f.check([row[0] for row in conf[1:]] == labels, "confusion rows in class order")
            m = np.array([[int(x) for x in row[1:]] for row in conf[1:]])
            f.check(m.shape == want["conf"].shape and (m == want["conf"]).all(),
                    "confusion matrix\n%s\nvs direct\n%s" % (m, want["conf"]))

            # the human report
            r = h.run_cli(["evaluate", tree], socket=d.socket)
            f.check(r.rc == 0 and "accuracy" in r.out and "log loss" in r.out and "F1a" in r.out
                    and "%s (2)" % UNKNOWN in r.out, "evaluate report: %r" % r)
            # the class table: the classes in the data or predicted, unless --all-classes;
            # on one class folder of two crops, at most three classes occur
            small = os.path.join(tmp, "small")
            os.makedirs(os.path.join(small, KNOWN[0]))
            for p in pool[:2]:
                shutil.copyfile(p, os.path.join(small, KNOWN[0], os.path.basename(p)))
            r = h.run_cli(["evaluate", "--json", small], socket=d.socket)
            occur = [c["label"] for c in json.loads(r.out)["classes"] if c["support"] or c["predicted"]] \
                if r.rc == 0 else []
            r = h.run_cli(["evaluate", small], socket=d.socket)
            listed = [ln.split()[0] for ln in r.out.splitlines()
                      if ln.split() and ln.split()[0] in labels]
            f.check(r.rc == 0 and listed == occur and 1 <= len(occur) <= 3 < len(labels),
                    "report lists the classes that occur: %r vs %r" % (listed, occur))
            f.check("%d classes of the model neither in the data nor predicted" % (len(labels) - len(occur))
                    in r.out, "report says how many it left out: %r" % r.out)
            r = h.run_cli(["evaluate", "--all-classes", small], socket=d.socket)
            listed = [ln.split()[0] for ln in r.out.splitlines()
                      if ln.split() and ln.split()[0] in labels]
            f.check(r.rc == 0 and listed == labels, "--all-classes lists every class: %r" % listed)

            # only unknown labels: nothing scored
            only = os.path.join(tmp, "only_unknown")
            h.make_tree(only, [UNKNOWN], 2)
            r = h.run_cli(["evaluate", only], socket=d.socket)
            f.check(r.rc == 1 and "could be scored" in r.err and UNKNOWN in r.out,
                    "only unknown labels: exit 1, reported: %r" % r)
            # a DIR that is not there
            missing = os.path.join(tmp, "no-such-dir")
            r = h.run_cli(["evaluate", missing], socket=d.socket)
            f.check(r.rc == 2 and missing in r.err, "missing DIR: exit 2 naming it: %r" % r)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    f.finish()


if __name__ == "__main__":
    main()
