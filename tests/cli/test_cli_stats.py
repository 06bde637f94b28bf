"""plankton-client stats against a real planktond (tiny test model) on real
NDSB crops: the adaptive-TTA counters (batching.adaptive_tta) in the table
and in --json. With adaptive TTA on and one crop at a time (no load), each
crop that asked for no TTA of its own gets the model's full default views
and none is reduced; crops sent with --tta N are not counted; with the
setting off the counters stay 0 and the table says so. Exit 77 without the
data."""
import json
import os
import shutil
import sys
import tempfile

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_harness as h  # noqa: E402

CLASSES = ["amphipods", "copepod_calanoid"]
VIEWS = 4


def model_with_tta(dest, views):
    """A copy of the test model folder whose default TTA is views."""
    shutil.copytree(h.env("PD_TEST_MODEL"), dest)
    path = os.path.join(dest, "model.yaml")
    with open(path) as fh:
        spec = yaml.safe_load(fh)
    spec.setdefault("tta", {})["count"] = views
    with open(path, "w") as fh:
        yaml.safe_dump(spec, fh, sort_keys=False)
    return dest


def stats(f, d):
    r = h.run_cli(["stats", "--json"], socket=d.socket)
    f.check(r.rc == 0, "stats --json: %r" % r)
    return json.loads(r.out) if r.rc == 0 else {}


def table_line(f, d):
    r = h.run_cli(["stats"], socket=d.socket)
    f.check(r.rc == 0, "stats: %r" % r)
    lines = [ln for ln in r.out.splitlines() if ln.startswith("adaptive tta")]
    f.check(len(lines) == 1, "stats table has one 'adaptive tta' line: %r" % r.out)
    return lines[0] if lines else ""


def main():
    f = h.Failures("cli_stats")
    tmp = tempfile.mkdtemp(prefix="pc-cli-stats-")
    paths = h.make_tree(os.path.join(tmp, "crops"), CLASSES, 2)   # 4 crops
    model = model_with_tta(os.path.join(tmp, "model"), VIEWS)
    with h.Daemon(["--model", model, "--set", "batching.adaptive_tta=true"]) as d:
        r = h.run_cli(["models", "--json"], socket=d.socket)
        f.check(r.rc == 0, "models --json: %r" % r)
        views = json.loads(r.out)["models"][0]["default_tta"] if r.rc == 0 else 0
        f.check(views == VIEWS, "the model copy's default TTA is %d (got %r)" % (VIEWS, views))
        r = h.run_cli(["classify", "-j", "1", "-f", "csv"] + paths, socket=d.socket)
        f.check(r.rc == 0, "classify without --tta: %r" % r)
        r = h.run_cli(["classify", "-j", "1", "--tta", "2", "-f", "csv"] + paths[:2],
                      socket=d.socket)
        f.check(r.rc == 0, "classify --tta 2: %r" % r)
        st = stats(f, d)
        want = {"tta_adaptive_requests": len(paths), "tta_views": len(paths) * views,
                "tta_reduced": 0}
        got = {k: st.get(k) for k in want}
        f.check(got == want, "stats --json adaptive counters: want %r, got %r" % (want, got))
        line = table_line(f, d)
        f.check("%d requests" % len(paths) in line and "%.2f views each" % views in line
                and "0 given fewer" in line, "stats table line: %r" % line)
    with h.Daemon(["--model", model]) as d:
        r = h.run_cli(["classify", "-j", "1", "-f", "csv"] + paths[:2], socket=d.socket)
        f.check(r.rc == 0, "classify (adaptive off): %r" % r)
        st = stats(f, d)
        got = [st.get(k) for k in ("tta_adaptive_requests", "tta_views", "tta_reduced")]
        f.check(got == [0, 0, 0], "adaptive counters stay 0 when it is off: %r" % got)
        line = table_line(f, d)
        f.check("none" in line, "stats table line with adaptive off: %r" % line)
    shutil.rmtree(tmp, ignore_errors=True)
    return f.finish()


if __name__ == "__main__":
    sys.exit(main())
