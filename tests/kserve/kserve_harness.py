"""What the KServe tests (tests/kserve/test_kserve_*.py) share: the venv
with tritonclient (scripts/kserve-venv; the importing script is run again
under the venv's python when this one lacks tritonclient), the checks, a
planktond with the KServe front ends, the native protocol's answers as the
reference, and the NDSB crops.

Importing this module re-executes the test under the venv's python where
needed, or exits 77 (skipped) with the reason.

env: PLANKTOND, PLANKTON_CLIENT, PLANKTON_DATA, PLANKTON_SOURCE_ROOT,
     PD_KSERVE_MODEL (the model served; default: the shipped one),
     KSERVE_PYTHON (a python with tritonclient; default: scripts/kserve-venv)
"""
import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

SKIP = 77
ROOT = os.environ.get("PLANKTON_SOURCE_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def skip(why):
    print("SKIP:", why, flush=True)
    sys.exit(SKIP)


def venv_python():
    if os.environ.get("KSERVE_PYTHON"):
        return os.environ["KSERVE_PYTHON"]
    r = subprocess.run([os.path.join(ROOT, "scripts", "kserve-venv")], capture_output=True, text=True)
    if r.returncode != 0:
        err = r.stderr.strip()
        skip("no tritonclient venv: " + (err.splitlines()[-1] if err else "scripts/kserve-venv failed"))
    return r.stdout.strip().splitlines()[-1]


try:
    import numpy as np
    import tritonclient.grpc as tg
    import tritonclient.grpc.service_pb2 as pb
    import tritonclient.http as th  # noqa: F401 (for the tests that import it from here)
    from PIL import Image  # noqa: F401 (for the tests that import it from here)
except ImportError:
    if os.environ.get("PD_KSERVE_REEXEC"):
        skip("the venv's python cannot import tritonclient, numpy and PIL")
    py = venv_python()
    os.environ["PD_KSERVE_REEXEC"] = "1"
    os.execv(py, [py] + sys.argv)

import grpc  # noqa: E402 (from tritonclient's dependencies)

# the model served: $PD_KSERVE_MODEL (meson: the tiny test model), else the shipped one
MODEL_DIR = os.environ.get("PD_KSERVE_MODEL") or os.path.join(ROOT, "models", "ndsb-seed")


def model_name(model_dir):
    text = open(os.path.join(model_dir, "model.yaml")).read()
    return re.search(r"^name:\s*(\S+)", text, re.M).group(1).strip('"')


MODEL = model_name(MODEL_DIR)

FAILS = []
CHECKS = [0]


def check(cond, what):
    CHECKS[0] += 1
    if not cond:
        FAILS.append(what)
        print("FAIL:", what, flush=True)
    return cond


def finish(name):
    """The closing line and the exit code."""
    print("%s: %d checks, %d failed" % (name, CHECKS[0], len(FAILS)), flush=True)
    sys.exit(1 if FAILS else 0)


def need_env(*names):
    data = os.environ.get("PLANKTON_DATA", "")
    if not os.path.isdir(os.path.join(data, "train")):
        skip("no NDSB crops at PLANKTON_DATA=%r" % data)
    for var in ("PLANKTOND", "PLANKTON_CLIENT") + names:
        if not os.environ.get(var):
            skip("$%s is not set (run through meson test)" % var)


def real_crops(n, step=997):
    """n real NDSB crops (path, JPEG bytes), every step-th of the sorted set."""
    jpgs = sorted(glob.glob(os.path.join(os.environ["PLANKTON_DATA"], "train", "*", "*.jpg")))
    picked = jpgs[::step][:n]
    if len(picked) < n:
        picked = jpgs[:n]
    return [(p, open(p, "rb").read()) for p in picked]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def channel(addr):
    """A gRPC channel with a connection of its own (grpcio shares one TCP
    connection between channels to the same target unless told not to)."""
    return grpc.insecure_channel(addr, options=[("grpc.use_local_subchannel_pool", 1)])


class Daemon:
    """planktond on a temporary native socket with the KServe front ends
    (grpc_addr / http_addr: "HOST:PORT", "unix:PATH" or None for off);
    restartable on the same addresses (its log grows across runs)."""

    def __init__(self, tmp, grpc_addr, http_addr, extra=(), name="planktond", model_dir=None):
        self.name = name
        self.sock = os.path.join(tmp, name + ".sock")
        self.grpc_addr, self.http_addr = grpc_addr, http_addr
        self.metrics_port = free_port()
        self.log_path = os.path.join(tmp, name + ".log")
        self.args = [os.environ["PLANKTOND"], "--socket", self.sock,
                     "--metrics", "127.0.0.1:%d" % self.metrics_port,
                     "--model", model_dir or MODEL_DIR, "--log-level", "info"]
        if grpc_addr:
            self.args += ["--grpc", grpc_addr]
        if http_addr:
            self.args += ["--http", http_addr]
        self.args += list(extra)
        self.p = None
        self.start()

    def start(self):
        with open(self.log_path, "ab") as log:
            self.p = subprocess.Popen(self.args, stdout=log, stderr=log)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError("planktond exited %d (log %s)" % (self.p.returncode, self.log_path))
            if self.ready():
                return
            time.sleep(0.1)
        raise RuntimeError("planktond did not become ready (log %s)" % self.log_path)

    def ready(self):
        if not os.path.exists(self.sock):
            return False
        if not self.grpc_addr:
            return True
        if self.grpc_addr.startswith("unix:") and not os.path.exists(self.grpc_addr[5:]):
            return False
        try:
            c = tg.InferenceServerClient(self.grpc_addr)
            ok = c.is_server_ready()
            c.close()
            return ok
        except Exception:
            return False

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        return self.p.wait(timeout=60)

    def metrics(self):
        s = socket.create_connection(("127.0.0.1", self.metrics_port))
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        s.close()
        return data.decode()


def native(daemon, paths, tta):
    """The native protocol's distributions for files, by path."""
    r = subprocess.run([os.environ["PLANKTON_CLIENT"], "--socket", daemon.sock, "classify", "--probs",
                        "-f", "json", "--tta", str(tta)] + paths, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("plankton-client: " + r.stderr)
    out = {}
    for line in r.stdout.splitlines():
        j = json.loads(line)
        out[j["path"]] = j["probabilities"]
    return out


def as_vector(probs_by_label, labels):
    return np.array([probs_by_label[lb] for lb in labels], dtype=np.float64)


def bytes_input(blobs, shape=None):
    inp = tg.InferInput("IMAGE", shape or [len(blobs)], "BYTES")
    inp.set_data_from_numpy(np.array(blobs, dtype=np.object_).reshape(shape or [len(blobs)]))
    return inp


def infer_request_bytes(blobs, tta=1, request_id=""):
    """A serialized ModelInferRequest of JPEG/PNG crops as BYTES [N] in
    raw_input_contents (tritonclient's layout), for grpcio calls without
    per-call serialization."""
    req = pb.ModelInferRequest(model_name=MODEL, id=request_id)
    req.inputs.add(name="IMAGE", datatype="BYTES", shape=[len(blobs)])
    req.raw_input_contents.append(b"".join(len(b).to_bytes(4, "little") + b for b in blobs))
    if tta:
        req.parameters["tta"].int64_param = tta
    return req.SerializeToString()


def probabilities(resp_bytes, n_classes):
    """The PROBABILITIES [N, classes] of a serialized ModelInferResponse."""
    r = pb.ModelInferResponse.FromString(resp_bytes)
    return np.frombuffer(r.raw_output_contents[0], dtype=np.float32).reshape(-1, n_classes)


def batch_hist(metrics):
    """planktond_inference_batch_size buckets: {le: cumulative count}."""
    out = {}
    for le, v in re.findall(r'^planktond_inference_batch_size_bucket\{le="([^"]+)"\} (\S+)$', metrics, re.M):
        out[le] = float(v)
    return out


def percentile(xs, q):
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * q))]
