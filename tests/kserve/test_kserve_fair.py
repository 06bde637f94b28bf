#!/usr/bin/env python3
"""test_kserve_fair: a flooding gRPC client starves nobody.

The KServe front ends give each connection its own share of the fair
batcher (gRPC: a channel's TCP connection; REST: an HTTP connection), as
the native front end does. One gRPC channel keeps WINDOW ModelInfer calls
in flight (grpcio futures in a process of its own, one real NDSB crop each),
and next to it, one after the other, polite clients send one crop at a
time: a native client (the raw protocol, so the test reads each answer's
timings.batches_waited, as tests/test_daemon_fair.c does), a second gRPC
channel and a REST connection (tritonclient.http, keep-alive). Checked:
  - every polite request is answered OK, none refused, with the native
    protocol's probabilities for its crop;
  - every native polite request went into the first batch the daemon
    formed after it was queued (batches_waited 0);
  - the polite gRPC and REST requests' median latency is at most half the
    flood's: they do not queue behind the flood's backlog, as they did
    when every KServe request was the batcher's one shared client;
  - every flood call is answered exactly once, OK with the native
    probabilities or RESOURCE_EXHAUSTED naming its share of max_queue.
Latencies and throughput are printed.

env: as kserve_harness; PD_KSERVE_FAIR_MODEL (the model; default: the
shipped one, whose batches take long enough for a backlog to form)
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cli"))
from kserve_harness import (  # noqa: E402 (re-executes under the venv's python where needed)
    MODEL, ROOT, Daemon, as_vector, channel, check, finish, free_port, grpc, infer_request_bytes,
    native, need_env, np, percentile, probabilities, real_crops, th)
from test_cli_errors import pb_field, pb_fields  # noqa: E402 (the protobuf wire helpers)

WINDOW = 256
N_POLITE = 40
N_CROPS = 16
# The shipped model through the same daemon, alone (the reference) and in the
# flood's batches: 1.6e-6 apart in an ASan build, where the per-layer kernel
# choice picks oneDNN for some layers and oneDNN's blocking depends on the
# batch; 1e-5 keeps a wrong crop's answer (differences of 1e-2 and more) out.
TOL = 1e-5
INFER = "/inference.GRPCInferenceService/ModelInfer"


def flood_main(addr, window, ref_path, stop_path, out_path):
    """The flood (run as a process of its own): `window` calls in flight
    until stop_path exists, then every owed answer awaited."""
    ref = json.load(open(ref_path))
    crops = [(p, open(p, "rb").read()) for p in ref["paths"]]
    want = [np.array(v) for v in ref["probs"]]
    reqs = [infer_request_bytes([b]) for _, b in crops]
    call = channel(addr).unary_unary(INFER)
    slots = threading.Semaphore(window)
    lock = threading.Lock()
    st = {"sent": 0, "ok": 0, "refused": 0, "failures": [], "lat": [], "worst": 0.0}
    owed = [0]

    def done(fut, k, t0):
        lat = time.monotonic() - t0
        with lock:
            owed[0] -= 1
            try:
                v = probabilities(fut.result(), len(want[k]))[0]
                d = float(np.max(np.abs(v - want[k])))
                st["worst"] = max(st["worst"], d)
                if d > TOL:
                    st["failures"].append("crop %d: diff %g" % (k, d))
                st["ok"] += 1
                st["lat"].append(lat)
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "share" in (e.details() or ""):
                    st["refused"] += 1
                else:
                    st["failures"].append("%s: %s" % (e.code(), e.details()))
        slots.release()

    i = 0
    t_start = time.monotonic()
    while not os.path.exists(stop_path):
        if not slots.acquire(timeout=0.1):
            continue
        k = i % len(reqs)
        with lock:
            owed[0] += 1
            st["sent"] += 1
        f = call.future(reqs[k], timeout=120)
        f.add_done_callback(lambda fut, k=k, t0=time.monotonic(): done(fut, k, t0))
        i += 1
        if i == window:
            open(out_path + ".started", "w").close()
    for _ in range(window):
        slots.acquire(timeout=150)
    elapsed = time.monotonic() - t_start
    with lock:
        st["owed"] = owed[0]
        st["per_s"] = st["ok"] / elapsed if elapsed > 0 else 0
        st["p50_ms"] = percentile(st["lat"], 0.5) * 1000
        st["p99_ms"] = percentile(st["lat"], 0.99) * 1000
        del st["lat"]
        json.dump(st, open(out_path, "w"))


# ---- the native polite client (the raw protocol: it reads timings) ----

def native_request(req_id, blob):
    image = pb_field(2, blob)  # format AUTO (0) is the default
    classify = pb_field(1, req_id) + pb_field(3, image) + pb_field(4, 1) + pb_field(5, 1) + pb_field(6, 1)
    body = pb_field(1, classify)
    return len(body).to_bytes(4, "big") + body


def recv_exact(sk, n):
    buf = b""
    while len(buf) < n:
        b = sk.recv(n - len(buf))
        if not b:
            raise ConnectionError("the daemon closed the connection")
        buf += b
    return buf


def native_answer(sk):
    """(id, status code, distribution, batches_waited) of one ClassifyResponse."""
    n = int.from_bytes(recv_exact(sk, 4), "big")
    fields = dict(pb_fields(recv_exact(sk, n)))
    cr = pb_fields(fields[1])
    rid, code, dist, waited = 0, 0, [], None
    for num, v in cr:
        if num == 1:
            rid = v
        elif num == 2:
            code = dict(pb_fields(v)).get(1, 0)
        elif num == 4:
            dist = list(np.frombuffer(v, dtype="<f4"))
        elif num == 7:
            waited = dict(pb_fields(v)).get(6, 0)
    return rid, code, dist, waited


def polite_native(d, crops, want):
    sk = socket.socket(socket.AF_UNIX)
    sk.settimeout(120)
    sk.connect(d.sock)
    lat, ok, first, worst = [], 0, 0, 0.0
    for i in range(N_POLITE):
        k = i % len(crops)
        t0 = time.monotonic()
        sk.sendall(native_request(i + 1, crops[k][1]))
        rid, code, dist, waited = native_answer(sk)
        lat.append(time.monotonic() - t0)
        check(rid == i + 1 and code == 0, "native polite %d: id %d status %d" % (i, rid, code))
        if code == 0 and len(dist) == len(want[k]):
            worst = max(worst, float(np.max(np.abs(np.array(dist) - want[k]))))
            ok += 1
            first += waited == 0
    sk.close()
    check(ok == N_POLITE, "native polite: %d of %d OK" % (ok, N_POLITE))
    check(first == N_POLITE, "native polite: %d of %d in the first batch after they were queued" % (first, N_POLITE))
    check(worst <= TOL, "native polite vs reference: %g" % worst)
    return lat, first


def polite_grpc(addr, crops, want):
    call = channel(addr).unary_unary(INFER)
    lat, ok, worst = [], 0, 0.0
    for i in range(N_POLITE):
        k = i % len(crops)
        t0 = time.monotonic()
        try:
            v = probabilities(call(infer_request_bytes([crops[k][1]]), timeout=120), len(want[k]))[0]
            lat.append(time.monotonic() - t0)
            worst = max(worst, float(np.max(np.abs(v - want[k]))))
            ok += 1
        except grpc.RpcError as e:
            check(False, "gRPC polite %d: %s: %s" % (i, e.code(), e.details()))
    check(ok == N_POLITE, "gRPC polite: %d of %d OK" % (ok, N_POLITE))
    check(worst <= TOL, "gRPC polite vs reference: %g" % worst)
    return lat


def polite_rest(addr, crops, want):
    c = th.InferenceServerClient(addr, connection_timeout=120, network_timeout=120)
    lat, ok, worst = [], 0, 0.0
    for i in range(N_POLITE):
        k = i % len(crops)
        inp = th.InferInput("IMAGE", [1], "BYTES")
        inp.set_data_from_numpy(np.array([crops[k][1]], dtype=np.object_))
        t0 = time.monotonic()
        try:
            v = c.infer(MODEL, [inp], parameters={"tta": 1}).as_numpy("PROBABILITIES")[0]
            lat.append(time.monotonic() - t0)
            worst = max(worst, float(np.max(np.abs(v - want[k]))))
            ok += 1
        except Exception as e:  # tritonclient's InferenceServerException
            check(False, "REST polite %d: %s" % (i, e))
    c.close()
    check(ok == N_POLITE, "REST polite: %d of %d OK" % (ok, N_POLITE))
    check(worst <= TOL, "REST polite vs reference: %g" % worst)
    return lat


def main():
    if len(sys.argv) == 7 and sys.argv[1] == "--flood":
        flood_main(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6])
        return
    need_env()
    model_dir = os.environ.get("PD_KSERVE_FAIR_MODEL") or os.path.join(ROOT, "models", "ndsb-seed")
    if not os.path.exists(os.path.join(model_dir, "model.yaml")):
        print("SKIP: no model at %s" % model_dir)
        sys.exit(77)
    crops = real_crops(N_CROPS, step=613)
    tmp = tempfile.mkdtemp(prefix="pd-kserve-fair-")
    gaddr, haddr = "127.0.0.1:%d" % free_port(), "127.0.0.1:%d" % free_port()
    d = Daemon(tmp, gaddr, haddr, ["--max-batch", "32", "--max-queue", "1024", "--max-queue-delay-us", "2000"],
               model_dir=model_dir)
    flood = None
    try:
        paths = [p for p, _ in crops]
        ref = native(d, paths, 1)
        labels = list(ref[paths[0]].keys())
        want = [as_vector(ref[p], labels) for p in paths]
        ref_path, stop_path, out_path = (os.path.join(tmp, n) for n in ("ref.json", "stop", "flood.json"))
        json.dump({"paths": paths, "probs": [w.tolist() for w in want]}, open(ref_path, "w"))
        flood = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--flood", gaddr, str(WINDOW),
                                  ref_path, stop_path, out_path])
        deadline = time.time() + 60
        while time.time() < deadline and not os.path.exists(out_path + ".started"):
            time.sleep(0.05)
        time.sleep(2)  # the flood's window full for a while: a backlog at the daemon
        t0 = time.monotonic()
        nat_lat, first = polite_native(d, crops, want)
        grpc_lat = polite_grpc(gaddr, crops, want)
        rest_lat = polite_rest(haddr, crops, want)
        polite_s = time.monotonic() - t0
        open(stop_path, "w").close()
        flood.wait(timeout=180)
        check(flood.returncode == 0, "the flood process exited %s" % flood.returncode)
        f = json.load(open(out_path)) if os.path.exists(out_path) else {}
        check(f.get("owed", 1) == 0, "flood: %s calls never answered" % f.get("owed"))
        check(not f.get("failures"), "flood: failures %r" % f.get("failures", [])[:3])
        check(f.get("ok", 0) > 0, "flood: no call answered OK")
        check(f.get("ok", 0) + f.get("refused", 0) == f.get("sent", -1), "flood: %s sent, %s OK, %s refused" %
              (f.get("sent"), f.get("ok"), f.get("refused")))
        fp50 = f.get("p50_ms", 0)
        print("flood: 1 gRPC channel x %d in flight: %s sent, %s OK, %s RESOURCE_EXHAUSTED, %.0f answers/s, "
              "latency p50 %.1f ms p99 %.1f ms, max |p - native| %.2g" %
              (WINDOW, f.get("sent"), f.get("ok"), f.get("refused"), f.get("per_s", 0), fp50, f.get("p99_ms", 0),
               f.get("worst", 0)))
        for name, lat in (("native", nat_lat), ("gRPC", grpc_lat), ("REST", rest_lat)):
            p50 = percentile(lat, 0.5) * 1000
            print("polite %s: %d requests, latency p50 %.1f ms p99 %.1f ms (%.1fx below the flood's p50)%s" %
                  (name, len(lat), p50, percentile(lat, 0.99) * 1000, fp50 / p50 if p50 else 0,
                   ", %d in the first batch after they were queued" % first if name == "native" else ""))
            if name != "native":
                check(p50 * 2 <= fp50, "polite %s p50 %.1f ms is not at most half the flood's %.1f ms" %
                      (name, p50, fp50))
        print("polite clients ran %.1f s beside the flood" % polite_s)
        rc = d.stop()
        check(rc == 0, "planktond exit %s" % rc)
    finally:
        if flood and flood.poll() is None:
            open(os.path.join(tmp, "stop"), "w").close()
            flood.wait(timeout=180)
        if d.p.poll() is None:
            d.stop()
    print("logs in", tmp)
    finish("kserve_fair")


if __name__ == "__main__":
    main()
