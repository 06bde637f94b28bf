"""Triton's model repository extension on planktond (model.control), with
tritonclient's own calls: a copy of $PD_TEST_REPO (tests/make_repository.sh)
without its ensemble folder is served with model.control on and the KServe
listeners on loopback. Over gRPC (RepositoryModelUnload, RepositoryModelLoad)
and REST (POST /v2/repository/models/NAME/unload and /load): unload tiny
(ModelReady false, RepositoryIndex UNAVAILABLE 'unloaded', infer refused
saying so, /metrics planktond_model_ready 0), load it again (ready, infer
answers as before), load the ensemble folder copied in (it answers as
plankton-client --model ens on the same crop), a missing folder refused
(NOT_FOUND naming it), a load of a loaded model reloads it (Triton's
semantics). ServerMetadata lists model_repository only there. Refused:
model.control off (the message names the setting), and model.control on
with the KServe listener on 0.0.0.0 (not loopback: over TCP the uid cannot
be checked).

env: PLANKTOND, PLANKTON_CLIENT, PD_TEST_REPO (kserve_harness.py for the rest)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kserve_harness import (Daemon, check, finish, free_port, np, skip, tg, th,  # noqa: E402
                            Image)


def expect_error(fn, needle, what):
    try:
        fn()
    except tg.InferenceServerException as e:
        msg = e.message() or ""
        print("%s: %s" % (what, msg), flush=True)
        check(needle in msg, "%s: message %r lacks %r" % (what, msg, needle))
        return
    check(False, "%s: no error" % what)


def crop():
    """A deterministic gray crop: a dark disc on white."""
    y, x = np.mgrid[0:53, 0:71]
    return np.where((x - 30) ** 2 + (y - 25) ** 2 < 300, 40, 235).astype(np.uint8)


def grpc_probs(c, model, px):
    inp = tg.InferInput("IMAGE", [1, px.shape[0], px.shape[1]], "UINT8")
    inp.set_data_from_numpy(px[None])
    return c.infer(model, [inp], parameters={"tta": 1}).as_numpy("PROBABILITIES")[0]


def native_probs(d, model, png):
    r = subprocess.run([os.environ["PLANKTON_CLIENT"], "--socket", d.sock, "classify", "--probs", "-f",
                        "json", "--tta", "1", "--model", model, png], capture_output=True, text=True)
    if r.returncode != 0:
        check(False, "plankton-client --model %s: %s" % (model, r.stderr))
        return None
    by_label = json.loads(r.stdout.splitlines()[0])["probabilities"]
    m = subprocess.run([os.environ["PLANKTON_CLIENT"], "--socket", d.sock, "models", "--json", model],
                       capture_output=True, text=True)
    labels = json.loads(m.stdout)["models"][0]["classes"] if m.returncode == 0 else []
    check(len(labels) == len(by_label) > 0, "plankton-client models --json %s: its classes" % model)
    return [by_label[lb] for lb in labels]


def index_state(c, name):
    """{version: (state, reason)} of name in RepositoryIndex."""
    out = {}
    for m in c.get_model_repository_index(as_json=True).get("models", []):
        if m["name"] == name:
            out[m.get("version", "")] = (m.get("state", ""), m.get("reason", ""))
    return out


def ready_metric(d, name, version):
    for line in d.metrics().splitlines():
        if line.startswith('planktond_model_ready{model="%s",version="%s"}' % (name, version)):
            return float(line.split()[-1])
    return None


def serving(tmp, repo):
    gport, hport = free_port(), free_port()
    d = Daemon(tmp, "127.0.0.1:%d" % gport, "127.0.0.1:%d" % hport, name="control",
               extra=["--repository", repo, "--default-model", "other", "--max-batch", "4",
                      "--set", "model.control=true"])
    g = tg.InferenceServerClient("127.0.0.1:%d" % gport)
    h = th.InferenceServerClient("127.0.0.1:%d" % hport)
    px = crop()
    png = os.path.join(tmp, "crop.png")
    Image.fromarray(px).save(png)
    check("model_repository" in g.get_server_metadata(as_json=True).get("extensions", []),
          "gRPC ServerMetadata lists model_repository")
    check("model_repository" in h.get_server_metadata().get("extensions", []),
          "REST /v2 lists model_repository")
    before = grpc_probs(g, "tiny", px)

    # gRPC: unload, then load
    g.unload_model("tiny")
    check(not g.is_model_ready("tiny"), "gRPC unload: tiny not ready")
    idx = index_state(g, "tiny")
    print("RepositoryIndex tiny after the unload:", idx, flush=True)
    check(set(idx) == {"1", "2"} and all(s == "UNAVAILABLE" and "unloaded" in r for s, r in idx.values()),
          "RepositoryIndex: both tiny versions UNAVAILABLE, unloaded")
    expect_error(lambda: grpc_probs(g, "tiny", px), "is unloaded", "gRPC infer on the unloaded tiny")
    check(ready_metric(d, "tiny", "2") == 0, "/metrics planktond_model_ready tiny 2 is 0")
    check(g.is_model_ready("other"), "other stays ready")
    g.load_model("tiny")
    check(g.is_model_ready("tiny") and g.is_model_ready("tiny", "1"), "gRPC load: tiny ready again")
    after = grpc_probs(g, "tiny", px)
    diff = float(np.max(np.abs(after - before)))
    print("tiny before the unload and after the load: largest difference %.3g" % diff, flush=True)
    check(diff <= 1e-6, "tiny answers as before")
    check(ready_metric(d, "tiny", "2") == 1, "/metrics planktond_model_ready tiny 2 is 1")
    g.load_model("tiny")  # loaded: Triton reloads it
    check(g.is_model_ready("tiny"), "gRPC load of a loaded model (a reload): ready")
    expect_error(lambda: g.load_model("nope"), "has no folder 'nope'", "gRPC load of a missing folder")

    # REST: unload, load, and a fourth model
    h.unload_model("tiny")
    check(not h.is_model_ready("tiny"), "REST unload: tiny not ready")
    h.load_model("tiny")
    check(h.is_model_ready("tiny"), "REST load: tiny ready")
    expect_error(lambda: h.load_model("ens"), "has no folder 'ens'", "REST load before the folder is there")
    shutil.copytree(os.path.join(os.environ["PD_TEST_REPO"], "ens"), os.path.join(repo, "ens"))
    h.load_model("ens")
    check(h.is_model_ready("ens"), "REST load: ens ready")
    got = grpc_probs(g, "ens", px)
    want = native_probs(d, "ens", png)
    if want is not None:
        diff = float(np.max(np.abs(got - np.array(want))))
        print("ens over gRPC against plankton-client --model ens: largest difference %.3g" % diff, flush=True)
        check(diff <= 1e-5, "ens answers as the native protocol's")
    g.close()
    h.close()
    check(d.stop() == 0, "planktond exits 0")


def refused(tmp, repo, extra, host, needle, what):
    gport, hport = free_port(), free_port()
    d = Daemon(tmp, "%s:%d" % (host, gport), "%s:%d" % (host, hport), name=what,
               extra=["--repository", repo, "--default-model", "other", "--max-batch", "4"] + extra)
    g = tg.InferenceServerClient("127.0.0.1:%d" % gport)
    h = th.InferenceServerClient("127.0.0.1:%d" % hport)
    check("model_repository" not in g.get_server_metadata(as_json=True).get("extensions", []),
          what + ": no model_repository extension")
    expect_error(lambda: g.unload_model("tiny"), needle, what + ": gRPC unload")
    expect_error(lambda: h.unload_model("tiny"), needle, what + ": REST unload")
    check(g.is_model_ready("tiny"), what + ": tiny still ready")
    g.close()
    h.close()
    check(d.stop() == 0, what + ": planktond exits 0")


def main():
    for var in ("PLANKTOND", "PLANKTON_CLIENT", "PD_TEST_REPO"):
        if not os.environ.get(var):
            skip("$%s is not set (run through meson test)" % var)
    tmp = tempfile.mkdtemp(prefix="pd-kserve-repo-")
    repo = os.path.join(tmp, "repo")
    shutil.copytree(os.environ["PD_TEST_REPO"], repo, ignore=shutil.ignore_patterns("ens"))
    try:
        serving(tmp, repo)
        refused(tmp, repo, [], "127.0.0.1", "model.control: true", "off")
        refused(tmp, repo, ["--set", "model.control=true"], "0.0.0.0", "bind the KServe listener to loopback",
                "not-loopback")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    finish("kserve_repository")


if __name__ == "__main__":
    main()
