"""Per-class thresholds and the taxonomy, end to end: planktond-model
fit-thresholds fits thresholds on real NDSB crops with the engine's own
probabilities and writes them into a copy of the tiny test model, whose
model.yaml also gets a lineage; a real planktond serves that copy and the
real plankton-client's outputs are checked against the engine
(planktond-model run):
- the fitted thresholds reach the asked precision on the crops they were
  fitted on (checked here from the engine's probabilities, not the tool's);
- unclassified (p(top) < its class's threshold) in json (with threshold),
  csv (classification column) and table rows, the scores left raw;
- EcoTaxa's object_annotation_hierarchy is the top class's lineage, and
  object_unclassified / object_threshold are there;
- --rollup LEVEL sums the engine's probabilities over the classes whose
  lineages share their first LEVEL names; a bad LEVEL and a model without a
  lineage are usage errors naming them;
- a model without the blocks writes what it always did."""
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_harness as h  # noqa: E402

TARGET = 0.3
LINEAGE = {
    "acantharia_protist": "Eukaryota>Rhizaria>Acantharia",
    "amphipods": "Eukaryota>Arthropoda>Amphipoda",
    "chaetognath_sagitta": "Eukaryota>Chaetognatha>Sagitta",
    "copepod_calanoid": "Eukaryota>Arthropoda>Copepoda>Calanoida",
    "detritus_other": "not-living>detritus",
    "diatom_chain_string": "Eukaryota>Bacillariophyta",
    "fecal_pellet": "not-living>feces",
    "hydromedusae_solmaris": "Eukaryota>Cnidaria>Solmaris",
    "protist_other": "Eukaryota>Protista",
    "siphonophore_calycophoran_rocketship_adult": "Eukaryota>Cnidaria>Siphonophorae",
    "trichodesmium_puff": "Bacteria>Trichodesmium",
    "tunicate_doliolid": "Eukaryota>Tunicata>Doliolida",
}


def cut(lineage, level):
    return ">".join(lineage.split(">")[:level])


def read_thresholds(yaml_path, labels):
    import yaml
    doc = yaml.safe_load(open(yaml_path))
    t = doc.get("thresholds") or {}
    return np.array([np.float32(t.get(c, 0.0)) for c in labels], dtype=np.float32)


def main():
    f = h.Failures("cli_taxonomy")
    original = h.env("PD_TEST_MODEL")
    labels = h.model_classes()
    tmp = tempfile.mkdtemp(prefix="pc-cli-taxonomy-")
    try:
        model = os.path.join(tmp, "model")
        shutil.copytree(original, model)
        tree = os.path.join(tmp, "crops")
        paths = h.make_tree(tree, labels, 6)
        truth = np.array([labels.index(os.path.basename(os.path.dirname(p))) for p in paths])

        # ---- fit-thresholds on these crops, written into the copy ----
        fit = subprocess.run([h.env("PLANKTOND_MODEL_TOOL"), "fit-thresholds", model, tree,
                              "--target-precision", str(TARGET), "--threads", "1", "--write"],
                             capture_output=True, text=True)
        f.check(fit.returncode == 0, "fit-thresholds runs: %s %s" % (fit.stdout[-2000:], fit.stderr))
        last = [ln for ln in fit.stdout.splitlines() if ln.startswith("fit-thresholds:")]
        f.check(len(last) == 1 and "target=0.3 scored=%d " % len(paths) in last[0],
                "its machine-readable line: %r" % last)
        bad = subprocess.run([h.env("PLANKTOND_MODEL_TOOL"), "fit-thresholds", model, tree,
                              "--target-precision", "1.5"], capture_output=True, text=True)
        f.check(bad.returncode == 2 and "--target-precision: expected a number in (0, 1], got '1.5'"
                in bad.stderr, "a bad target is named: %r" % bad.stderr)
        with open(os.path.join(model, "model.yaml"), "a") as fh:
            fh.write("lineage:\n" + "".join("  %s: \"%s\"\n" % (c, LINEAGE[c]) for c in labels))
        thr = read_thresholds(os.path.join(model, "model.yaml"), labels)
        f.check(thr.max() > 0, "some class got a threshold: %r" % thr)

        os.environ["PD_TEST_MODEL"] = model
        ref = h.engine_probs(paths)
        top = ref.argmax(axis=1)
        ptop = ref[np.arange(len(paths)), top]
        # the precision asked, on the crops it was fitted on, for every class
        for c in range(len(labels)):
            kept = (top == c) & (ptop >= thr[c])
            if kept.any():
                prec = float((truth[kept] == c).mean())
                f.check(prec >= TARGET - 1e-9, "%s: precision %.4f of %d kept >= %g (t=%r)"
                        % (labels[c], prec, kept.sum(), TARGET, float(thr[c])))
        unclassified = ptop < thr[top]
        sure = np.abs(ptop - thr[top]) > 1e-5  # the engine and the daemon may differ by an ulp
        f.check(unclassified.any() and (~unclassified).any(),
                "the crops include both kinds: %d unclassified of %d" % (unclassified.sum(), len(paths)))

        with h.Daemon() as d:
            r = h.run_cli(["classify", "-f", "json", tree], socket=d.socket)
            rows = [json.loads(ln) for ln in r.out.splitlines()]
            f.check(r.rc == 0 and [x["path"] for x in rows] == paths, "json runs: %r" % r)
            for i, x in enumerate(rows[:len(paths)]):
                f.check(x["label"] == labels[top[i]] and abs(x["probability"] - ptop[i]) < 1e-5,
                        "%s: raw top score kept: %r" % (paths[i], x))
                f.check(abs(x["threshold"] - float(thr[top[i]])) < 1e-7,
                        "%s: threshold %r, the model's %r" % (paths[i], x["threshold"], thr[top[i]]))
                if sure[i]:
                    f.check(x["unclassified"] == bool(unclassified[i]),
                            "%s: unclassified %r, p %.6f t %.6f" % (paths[i], x["unclassified"],
                                                                     ptop[i], thr[top[i]]))
            r = h.run_cli(["classify", "-f", "csv", tree], socket=d.socket)
            crows = list(csv.reader(io.StringIO(r.out)))
            f.check(r.rc == 0 and crows[0] == ["path", "label", "probability", "classification"],
                    "csv header with thresholds: %r" % crows[:1])
            for i, row in enumerate(crows[1:len(paths) + 1]):
                want = "unclassified" if unclassified[i] else labels[top[i]]
                if sure[i]:
                    f.check(row[3] == want, "csv %s: %r, want %s" % (paths[i], row, want))
            r = h.run_cli(["classify", tree], socket=d.socket)
            lines = r.out.splitlines()
            marked = [ln.endswith("  unclassified") for ln in lines]
            f.check(len(lines) == len(paths) and all(
                marked[i] == bool(unclassified[i]) for i in range(len(paths)) if sure[i]),
                "table rows marked unclassified: %r" % lines[:4])

            # ---- EcoTaxa: the hierarchy, the flag ----
            bundle = os.path.join(tmp, "bundle")
            r = h.run_cli(["classify", "-f", "ecotaxa", "-o", os.path.join(bundle, "ecotaxa_t.tsv"),
                           tree], socket=d.socket)
            f.check(r.rc == 0, "ecotaxa runs: %r" % r)
            text = open(os.path.join(bundle, "ecotaxa_t.tsv"), encoding="utf-8-sig").read()
            table = list(csv.reader(io.StringIO(text), delimiter="\t"))
            names, types, body = table[0], table[1], table[2:]
            for col, typ in (("object_annotation_hierarchy", "[t]"), ("object_unclassified", "[f]"),
                             ("object_threshold", "[f]")):
                f.check(col in names and types[names.index(col)] == typ, "ecotaxa column %s %s: %r"
                        % (col, typ, names))
            if "object_annotation_hierarchy" in names and len(body) == len(paths):
                hi, un = names.index("object_annotation_hierarchy"), names.index("object_unclassified")
                cat = names.index("object_annotation_category")
                for i, row in enumerate(body):
                    f.check(row[hi] == LINEAGE[row[cat]] and row[cat] == labels[top[i]],
                            "ecotaxa row %d: hierarchy %r of %r" % (i, row[hi], row[cat]))
                    if sure[i]:
                        f.check(row[un] == ("1" if unclassified[i] else "0"),
                                "ecotaxa row %d unclassified %r" % (i, row[un]))

            # ---- --rollup: sums of the engine's probabilities ----
            for level in (1, 2, 4):
                groups = []
                for c in labels:
                    g = cut(LINEAGE[c], level)
                    if g not in groups:
                        groups.append(g)
                want = np.zeros((len(paths), len(groups)))
                for ci, c in enumerate(labels):
                    want[:, groups.index(cut(LINEAGE[c], level))] += ref[:, ci]
                r = h.run_cli(["classify", "--rollup", str(level), "--probs", "-f", "csv", tree],
                              socket=d.socket)
                rrows = list(csv.reader(io.StringIO(r.out)))
                f.check(r.rc == 0 and rrows[0] == ["path"] + groups,
                        "--rollup %d header: %r (%r)" % (level, rrows[:1], r.err))
                got = np.array([[float(v) for v in row[1:]] for row in rrows[1:]])
                f.check(got.shape == want.shape and np.abs(got - want).max() < 1e-5,
                        "--rollup %d sums the engine's probabilities (max diff %s)"
                        % (level, np.abs(got - want).max() if got.shape == want.shape else got.shape))
                r = h.run_cli(["classify", "--rollup", str(level), "-f", "json", tree],
                              socket=d.socket)
                jrows = [json.loads(ln) for ln in r.out.splitlines()]
                f.check(len(jrows) == len(paths) and all(
                    x["label"] == groups[int(np.argmax(want[i]))] and "unclassified" not in x
                    for i, x in enumerate(jrows)), "--rollup %d json: the best group" % level)
            r = h.run_cli(["classify", "--rollup", "2", "-f", "ecotaxa", "-o",
                           os.path.join(tmp, "b2", "ecotaxa_r.tsv"), tree], socket=d.socket)
            text = open(os.path.join(tmp, "b2", "ecotaxa_r.tsv"), encoding="utf-8-sig").read() \
                if r.rc == 0 else ""
            table = list(csv.reader(io.StringIO(text), delimiter="\t"))
            f.check(r.rc == 0 and "object_annotation_hierarchy" in table[0]
                    and "object_unclassified" not in table[0],
                    "--rollup ecotaxa: the groups' hierarchy, no thresholds: %r" % r)
            for level in ("0", "5", "two", ""):
                r = h.run_cli(["classify", "--rollup", level, tree], socket=d.socket)
                f.check(r.rc == 2 and ("--rollup: '%s' is not a depth of model daemon-tiny's "
                                       "lineages (a number from 1 to 4" % level) in r.err,
                        "--rollup %r refused: %r" % (level, r))

        # ---- an ensemble's own blocks, never its member 0's ----
        ens = os.path.join(tmp, "ensemble")
        os.makedirs(ens)
        shutil.copytree(original, os.path.join(tmp, "plain"))
        with open(os.path.join(ens, "model.yaml"), "w") as fh:
            fh.write("format: 1\nname: ens\nversion: \"1\"\nensemble:\n  members: [../model, "
                     "../plain]\nthresholds: {copepod_calanoid: 1}\nlineage:\n"
                     + "".join("  %s: \"E>%s\"\n" % (c, c) for c in labels))
        os.environ["PD_TEST_MODEL"] = ens
        with h.Daemon() as d:
            r = h.run_cli(["classify", "-f", "json", tree], socket=d.socket)
            rows = [json.loads(ln) for ln in r.out.splitlines()]
            f.check(r.rc == 0 and len(rows) == len(paths) and all(
                x["threshold"] == (1.0 if x["label"] == "copepod_calanoid" else 0.0)
                and x["unclassified"] == (x["label"] == "copepod_calanoid") for x in rows),
                "ensemble: its own thresholds, not member 0's: %r" % rows[:3])
            r = h.run_cli(["classify", "--rollup", "1", "-f", "csv", "--probs", tree],
                          socket=d.socket)
            rrows = list(csv.reader(io.StringIO(r.out)))
            f.check(r.rc == 0 and rrows[0] == ["path", "E"] and all(
                abs(float(row[1]) - 1) < 1e-5 for row in rrows[1:]),
                "ensemble: its own lineage (one root E): %r" % rrows[:2])

        # ---- a model without the blocks: as before ----
        os.environ["PD_TEST_MODEL"] = original
        with h.Daemon() as d:
            r = h.run_cli(["classify", "--rollup", "1", tree], socket=d.socket)
            f.check(r.rc == 2 and "--rollup: model daemon-tiny carries no lineage" in r.err,
                    "--rollup without a lineage: %r" % r)
            r = h.run_cli(["classify", "-f", "csv", tree], socket=d.socket)
            f.check(r.rc == 0 and r.out.startswith("path,label,probability\n"),
                    "no thresholds: the csv columns of before: %r" % r.out[:80])
            r = h.run_cli(["classify", "-f", "json", tree], socket=d.socket)
            f.check(r.rc == 0 and '"unclassified"' not in r.out and "unclassified" not in r.out,
                    "no thresholds: json without unclassified")
    finally:
        os.environ["PD_TEST_MODEL"] = original
        shutil.rmtree(tmp, ignore_errors=True)
    f.finish()


if __name__ == "__main__":
    main()
