#!/usr/bin/env python3
"""bench/kserve: the KServe front ends next to the native protocol, on one
daemon, in one run.

A random-weight model (default bench/models/seed_c4.yaml) served by one
planktond with the native socket, --grpc and --http. Closed-loop clients
(each keeps one request of one crop in flight) at 1, 8 and 64 clients, raw
gray pixels and PNG: native (bench/daemon_load, the real client library),
gRPC unary (a ModelInfer call per request), gRPC streaming (one
ModelStreamInfer stream per client) and REST with the binary tensor extension
(one keep-alive connection per client), all at the model's default TTA
as bench/daemon_load sends. Crops are synthetic, of the sizes
bench/daemon_load makes (40..199 px a side). For every run: throughput,
p50/p99 latency (send to answer), and the daemon's front-end CPU per
request (its loop thread, the gRPC completion-queue thread "kserve-cq" and
gRPC's own threads; the engine "pd-*" and the decode pool are apart).
Prints the table and, last, machine-readable:

  kserve_vs_native=<gRPC streaming / native throughput, 64 clients, raw>
  grpc_overhead_us=<front-end CPU per request, gRPC streaming minus native, 64 clients, raw>

(targets: >= 0.9 and <= 50). The gRPC clients are bench/kserve_load (C,
gRPC core's C API as a Triton client uses it, a channel per client, the
same crops as bench/daemon_load) with --grpc-client c, the default where it
is built; --grpc-client python: tritonclient's (async_infer and one stream
per client, their own crops), which on a small machine are the limit
themselves. --transport: the native protocol and gRPC both over TCP
loopback (default; as remote clients connect) or both on Unix sockets
(the comparison on one transport; before, native was on the Unix socket
and gRPC on TCP). REST is always Python (http.client) over TCP.
client_cpu_us: the
clients' own CPU per request (the C tools' from their rusage). The
daemon's front-end CPU is every thread's but the engine's (pd-*) and the
decode pool's (libuv's, named planktond): the loop, kserve-cq, gRPC's own;
each thread's from /proc's schedstat (ns), divided by every answer of
the run (warm-up included; the C tools count them, the Python clients'
are estimated from the measured period).

--perf-analyzer: then Triton's own load generator, perf_analyzer (C++, from
tritonclient 2.48.0's wheel; perf_analyzer_run.py), on the same daemon over
gRPC and HTTP with the PNG crops, at --pa-concurrency (START:END:STEP),
batch 1: infer/s, p50/p99 and the server's queue and compute per request as
perf_analyzer reports them, then perf_analyzer_grpc_max=<infer/s> and
perf_analyzer_http_max=<infer/s> (the best level). Where perf_analyzer
cannot run, the reason is printed instead.

  bench/kserve/bench_kserve.py [--model SPEC] [--seconds 5] [--warmup 1]
                               [--clients 1,8,64] [--threads 2]
                               [--grpc-client c|python] [--transport tcp|unix]
                               [--perf-analyzer] [--pa-concurrency 1:64:7]
                               [--only-perf-analyzer]
"""
import argparse
import http.client
import io
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLK_TCK = os.sysconf("SC_CLK_TCK")

try:
    import numpy as np
    import tritonclient.grpc as tg
    from PIL import Image
except ImportError:
    if os.environ.get("PD_KSERVE_REEXEC"):
        raise SystemExit("bench/kserve: the venv's python cannot import tritonclient, numpy and PIL")
    r = subprocess.run([os.path.join(ROOT, "scripts", "kserve-venv")], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("bench/kserve: no tritonclient venv: " + r.stderr.strip())
    py = r.stdout.strip().splitlines()[-1]
    os.environ["PD_KSERVE_REEXEC"] = "1"
    os.execv(py, [py] + sys.argv)


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def build_dir():
    d = os.environ.get("BUILD_DIR") or os.path.join(ROOT, "build-bench")
    if not os.path.exists(os.path.join(d, "build.ninja")):
        subprocess.run(["meson", "setup", d, ROOT, "--buildtype=release"], check=True,
                       stdout=subprocess.DEVNULL)
    subprocess.run(["meson", "compile", "-C", d, "daemon/planktond", "bench/daemon_load", "bench/kserve_load"],
                   check=True, stdout=subprocess.DEVNULL)
    return d


def thread_cpu(pid):
    """CPU seconds: (engine, front end, decode pool), from each thread's
    /proc schedstat (nanoseconds; /proc's stat ticks, 10 ms, are too coarse
    for tens of microseconds per request). The engine: the pd-* threads; the
    decode pool: libuv's threads (named planktond, not the main one); the
    front end: every other thread: the loop, kserve-cq and gRPC's own
    (event_engine, timer_manager, default-executor, resolver-executor,
    grpc_global_timer). Threads that exit between two readings lose what they
    ran in between (gRPC's short-lived executor threads: they run little)."""
    engine = front = pool = 0.0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                comm = f.read().strip()
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                cpu = int(f.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            continue
        if comm.startswith("pd-"):
            engine += cpu
        elif comm == "planktond" and int(tid) != pid:
            pool += cpu
        else:
            front += cpu
    return engine, front, pool


def crops(n=64, seed=1):
    """Synthetic crops like bench/daemon_load's: gray blobs 40..199 px a side."""
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        w, h = 40 + rnd.randrange(160), 40 + rnd.randrange(160)
        y, x = np.mgrid[0:h, 0:w]
        blob = ((x - w / 2) / (w * 0.35)) ** 2 + ((y - h / 2) / (h * 0.3)) ** 2 <= 1
        px = np.where(blob, 60 + rnd.randrange(120), 230).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(px).save(buf, format="PNG")
        out.append((px, buf.getvalue()))
    return out


def percentile(v, p):
    if not v:
        return 0.0
    v = sorted(v)
    return v[min(len(v) - 1, int(p / 100.0 * len(v)))]


def grpc_input(c, fmt):
    px, png = c
    if fmt == "raw":
        t = tg.InferInput("IMAGE", [1, px.shape[0], px.shape[1]], "UINT8")
        t.set_data_from_numpy(px[None])
    else:
        t = tg.InferInput("IMAGE", [1], "BYTES")
        t.set_data_from_numpy(np.array([png], dtype=np.object_))
    return t


def closed_loop(n_clients, seconds, warmup, start_one):
    """Each client keeps one request in flight: start_one(client, done_cb)."""
    lat, errors = [], [0]
    lock = threading.Lock()
    t_start = time.time() + warmup
    t_end = t_start + seconds
    done_ev = threading.Event()
    live = [n_clients]

    def make_cb(ci):
        def cb(t0, ok):
            now = time.time()
            with lock:
                if t_start <= t0 and now <= t_end:
                    if ok:
                        lat.append(now - t0)
                    else:
                        errors[0] += 1
            if now < t_end:
                start_one(ci, cb)
            else:
                with lock:
                    live[0] -= 1
                    if live[0] == 0:
                        done_ev.set()
        return cb

    for ci in range(n_clients):
        start_one(ci, make_cb(ci))
    done_ev.wait(seconds + warmup + 60)
    return {"rps": len(lat) / seconds, "p50": 1e3 * percentile(lat, 50), "p99": 1e3 * percentile(lat, 99),
            "errors": errors[0], "n": len(lat)}


def run_grpc_unary(addr, model, cs, fmt, n_clients, seconds, warmup):
    clients = [tg.InferenceServerClient(addr) for _ in range(min(n_clients, 8))]
    k = [0]

    def start_one(ci, cb):
        k[0] += 1
        t0 = time.time()
        inp = grpc_input(cs[k[0] % len(cs)], fmt)
        clients[ci % len(clients)].async_infer(model, [inp], callback=lambda result, error: cb(t0, error is None))

    r = closed_loop(n_clients, seconds, warmup, start_one)
    for c in clients:
        c.close()
    return r


def run_grpc_stream(addr, model, cs, fmt, n_clients, seconds, warmup):
    clients = [tg.InferenceServerClient(addr) for _ in range(n_clients)]
    cbs = [None] * n_clients
    t0s = [0.0] * n_clients
    k = [0]

    for ci, c in enumerate(clients):
        c.start_stream(callback=lambda result, error, ci=ci: cbs[ci](t0s[ci], error is None))

    def start_one(ci, cb):
        k[0] += 1
        cbs[ci] = cb
        t0s[ci] = time.time()
        clients[ci].async_stream_infer(model, [grpc_input(cs[k[0] % len(cs)], fmt)])

    r = closed_loop(n_clients, seconds, warmup, start_one)
    for c in clients:
        c.stop_stream()
        c.close()
    return r


def rest_body(c, fmt):
    px, png = c
    if fmt == "raw":
        raw, dt, shape = px.tobytes(), "UINT8", [1, px.shape[0], px.shape[1]]
    else:
        raw, dt, shape = len(png).to_bytes(4, "little") + png, "BYTES", [1]
    j = ('{"inputs":[{"name":"IMAGE","datatype":"%s","shape":%s,"parameters":{"binary_data_size":%d}}],'
         '"outputs":[{"name":"PROBABILITIES","parameters":{"binary_data":true}}]}'
         % (dt, str(shape).replace(" ", ""), len(raw))).encode()
    return j, raw


def run_rest(port, model, cs, fmt, n_clients, seconds, warmup):
    bodies = [rest_body(c, fmt) for c in cs]
    lat, errors = [], [0]
    lock = threading.Lock()
    t_start = time.time() + warmup
    t_end = t_start + seconds

    def worker(ci):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        i = ci
        while True:
            j, raw = bodies[i % len(bodies)]
            i += 1
            t0 = time.time()
            if t0 >= t_end:
                break
            conn.request("POST", "/v2/models/%s/infer" % model, j + raw,
                         {"Inference-Header-Content-Length": str(len(j))})
            r = conn.getresponse()
            r.read()
            now = time.time()
            with lock:
                if t0 >= t_start and now <= t_end:
                    if r.status == 200:
                        lat.append(now - t0)
                    else:
                        errors[0] += 1
        conn.close()

    th = [threading.Thread(target=worker, args=(ci,)) for ci in range(n_clients)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    return {"rps": len(lat) / seconds, "p50": 1e3 * percentile(lat, 50), "p99": 1e3 * percentile(lat, 99),
            "errors": errors[0], "n": len(lat)}


def run_tool(cmd):
    """A C load generator (bench/daemon_load, bench/kserve_load): its line,
    and its CPU from the children's rusage. Errors are counted, not fatal:
    the tool exits 1 when it had any, and the row shows them."""
    import resource
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(cmd, text=True, capture_output=True)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    m = re.search(r"requests=.*", p.stdout)
    if not m:
        raise SystemExit("bench/kserve: %s exited %d without its line: %s" % (cmd[0], p.returncode, p.stderr.strip()))
    if p.stderr.strip():
        print("  %s: %s" % (os.path.basename(cmd[0]), p.stderr.strip().splitlines()[-1]), flush=True)
    f = lambda name: float(re.search(r"\b%s=([0-9.eE+-]+)" % name, m.group(0)).group(1))
    return {"rps": f("rps"), "p50": f("p50_ms"), "p99": f("p99_ms"), "errors": f("errors"),
            "n": f("requests"), "answered": f("answered"),
            "client_s": (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)}


def run_native(load_tool, address, fmt, n_clients, seconds, warmup):
    return run_tool([load_tool, "--address", address, "--clients", str(n_clients), "--window", "1",
                     "--format", fmt, "--seconds", str(seconds), "--warmup", str(warmup)])


def run_grpc_c(kserve_load, addr, model, mode, fmt, n_clients, seconds, warmup):
    return run_tool([kserve_load, "--address", addr, "--model", model, "--mode", mode, "--clients", str(n_clients),
                     "--format", fmt, "--seconds", str(seconds), "--warmup", str(warmup)])


def perf_analyzer(tmp, name, gaddr, haddr, cs, a):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import perf_analyzer_run as pa
    try:
        binary, env = pa.find()
    except pa.Unavailable as e:
        print("perf_analyzer: not run: %s" % e)
        return
    inp = pa.write_input(os.path.join(tmp, "pa.json"), [png for _, png in cs])
    for protocol, url in (("grpc", gaddr), ("http", haddr)):
        r = pa.run(binary, env, name, protocol, url, inp, concurrency=a.pa_concurrency,
                   interval_ms=int(a.seconds * 1000))
        for line in pa.summary(protocol, r):
            print(line, flush=True)
        if r["rc"] != 0:
            print("perf_analyzer %s: exit %d: %s" % (protocol, r["rc"], r["output"].strip().splitlines()[-1:]))
        print("perf_analyzer_%s_max=%.1f" % (protocol, max([x["throughput"] for x in r["rows"]] or [0.0])))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "bench", "models", "seed_c4.yaml"))
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--clients", default="1,8,64")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--perf-analyzer", action="store_true")
    ap.add_argument("--only-perf-analyzer", action="store_true")
    ap.add_argument("--pa-concurrency", default="1:64:7")
    ap.add_argument("--transport", choices=["tcp", "unix"], default="tcp",
                    help="the native protocol's and gRPC's: both over TCP loopback (default) or both on Unix sockets")
    ap.add_argument("--grpc-client", choices=["c", "python"], default=None,
                    help="the gRPC rows' clients: c (bench/kserve_load; the default where built) or python (tritonclient)")
    a = ap.parse_args()
    a.perf_analyzer = a.perf_analyzer or a.only_perf_analyzer
    clients = [int(x) for x in a.clients.split(",")]
    bd = build_dir()
    planktond = os.path.join(bd, "daemon", "planktond")
    load_tool = os.path.join(bd, "bench", "daemon_load")
    kserve_load = os.path.join(bd, "bench", "kserve_load")
    if a.grpc_client is None:
        a.grpc_client = "c" if os.path.exists(kserve_load) else "python"
    elif a.grpc_client == "c" and not os.path.exists(kserve_load):
        raise SystemExit("bench/kserve: --grpc-client c: %s is not built (the kserve feature)" % kserve_load)
    print("grpc_client=%s" % a.grpc_client, flush=True)
    cs = crops()
    with tempfile.TemporaryDirectory(prefix="pd-bench-kserve-") as tmp:
        model = os.path.join(tmp, "model")
        sh(["/usr/bin/python3", os.path.join(ROOT, "train", "make_random_model.py"), a.model, model,
            "--seed", "1"], env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "train")))
        name = re.search(r"^name:\s*(\S+)", open(os.path.join(model, "model.yaml")).read(), re.M).group(1)
        sock = os.path.join(tmp, "n.sock")
        gport, hport, nport = free_port(), free_port(), free_port()
        # the native protocol and gRPC on the same transport: TCP loopback
        # (as remote clients connect), or both on Unix sockets
        if a.transport == "tcp":
            naddr, gaddr, extra = "tcp:127.0.0.1:%d" % nport, "127.0.0.1:%d" % gport, ["--tcp", "127.0.0.1:%d" % nport]
        else:
            naddr, gaddr, extra = "unix:" + sock, "unix:" + os.path.join(tmp, "g.sock"), []
        print("transport=%s native=%s grpc=%s rest=127.0.0.1:%d" % (a.transport, naddr, gaddr, hport), flush=True)
        log = open(os.path.join(tmp, "d.log"), "w")
        d = subprocess.Popen([planktond, "--socket", sock, "--model", model, "--threads", str(a.threads),
                              "--grpc", gaddr, "--http", "127.0.0.1:%d" % hport] + extra,
                             stdout=log, stderr=log)
        try:
            deadline = time.time() + 120
            # "ready": every listener is up (the log says so after the last)
            while time.time() < deadline and d.poll() is None and \
                    not re.search(r" info: ready$", open(log.name).read(), re.M):
                time.sleep(0.1)
            if d.poll() is not None or time.time() >= deadline:
                raise SystemExit("bench/kserve: planktond did not start: " + open(log.name).read()[-2000:])
            kinds = [("native", lambda fmt, c: run_native(load_tool, naddr, fmt, c, a.seconds, a.warmup)),
                     ("grpc", lambda fmt, c: run_grpc_c(kserve_load, gaddr, name, "unary", fmt, c, a.seconds, a.warmup)
                      if a.grpc_client == "c" else run_grpc_unary(gaddr, name, cs, fmt, c, a.seconds, a.warmup)),
                     ("grpc-stream", lambda fmt, c: run_grpc_c(kserve_load, gaddr, name, "stream", fmt, c, a.seconds,
                                                               a.warmup)
                      if a.grpc_client == "c" else run_grpc_stream(gaddr, name, cs, fmt, c, a.seconds, a.warmup)),
                     ("rest-binary", lambda fmt, c: run_rest(hport, name, cs, fmt, c, a.seconds, a.warmup))]
            if a.perf_analyzer:
                perf_analyzer(tmp, name, gaddr, "127.0.0.1:%d" % hport, cs, a)
            if a.only_perf_analyzer:
                return
            rows = []
            print("%-12s %-4s %7s %10s %9s %9s %7s %12s %13s" % ("protocol", "fmt", "clients", "images/s", "p50_ms",
                                                             "p99_ms", "errors", "frontend_us", "client_cpu_us"))
            for fmt in ("raw", "png"):
                for c in clients:
                    for kind, fn in kinds:
                        before = thread_cpu(d.pid)
                        me0 = time.process_time()
                        r = fn(fmt, c)
                        me1 = time.process_time()
                        after = thread_cpu(d.pid)
                        # every answer of the run: counted by the C tools, estimated for Python's
                        total = r.get("answered") or (r["n"] * (a.seconds + a.warmup) / a.seconds if r["n"] else 0)
                        r["front_us"] = 1e6 * (after[1] - before[1]) / total if total else 0.0
                        client_s = r["client_s"] if "client_s" in r else me1 - me0
                        r["client_us"] = 1e6 * client_s / total if total else 0.0
                        rows.append((kind, fmt, c, r))
                        print("%-12s %-4s %7d %10.1f %9.2f %9.2f %7d %12.1f %13.1f" % (
                            kind, fmt, c, r["rps"], r["p50"], r["p99"], r["errors"], r["front_us"], r["client_us"]),
                            flush=True)
            top = max(clients)
            get = lambda kind: next(r for k, f, c, r in rows if k == kind and f == "raw" and c == top)
            nat, st = get("native"), get("grpc-stream")
            print("kserve_vs_native=%.3f" % (st["rps"] / nat["rps"] if nat["rps"] else 0.0))
            print("grpc_overhead_us=%.1f" % (st["front_us"] - nat["front_us"]))
        finally:
            d.terminate()
            d.wait(60)


if __name__ == "__main__":
    main()
