#!/usr/bin/env python3
"""test_kserve_haproxy: gRPC through HAProxy (Debian's) in HTTP mode over h2
in front of two planktond, each with --grpc on loopback:

    frontend: bind ... proto h2        backend: balance roundrobin,
                                       server ... proto h2 check

One tritonclient gRPC client (one channel: one h2 connection to HAProxy)
and real NDSB crops:
  - spread: N_SPREAD infers one after the other; HAProxy balances each
    request (h2 stream), so both daemons served some (each one's own
    ModelStatistics inference_count, asked on its own port), and every
    answer equals the native protocol's for the crop;
  - drain: at least N_DRAIN infers, DRAIN_JOBS at a time; after N_BEFORE
    answers one daemon is drained and started again once HAProxy's check
    saw it down, then the same for the other, mid-load. The client
    retries a call that failed UNAVAILABLE, up to RETRIES times: every call
    must end with the native answer, no call may fail any other way, and
    none may run out of retries. How a daemon is drained (argv[1]):
      drain-first  (meson's kserve_haproxy) the operator's way: HAProxy's
                   runtime API `set server planktond/X state drain`, its
                   requests finish, then SIGTERM (and `state ready` after
                   the restart);
      sigterm      (meson's kserve_haproxy_sigterm) SIGTERM alone, the way
                   systemd or Kubernetes stops a service: HAProxy checks
                   each daemon's readiness (`option httpchk` on its REST
                   listener's GET /v2/health/ready), the daemons run with
                   limits.drain_grace_ms, so a SIGTERM first turns ready
                   to 503 while the daemon serves on, HAProxy's check takes
                   it out, and the drain (GOAWAY) comes after HAProxy has
                   stopped sending. Without the grace (or with a TCP-only
                   check, which sees nothing until the listener closes) a
                   few calls in a thousand end CANCELLED: gRPC core cancels
                   those that reach it between its shutdown and HAProxy's
                   reading of the GOAWAY, and the daemon never sees them.
Retries and how the failures went are printed (HAProxy's own counts too).

env: as kserve_harness.
"""
import os
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
from kserve_harness import (  # noqa: E402 (re-executes under the venv's python where needed)
    MODEL, Daemon, as_vector, bytes_input, check, finish, free_port, native, need_env, np, real_crops, tg)
import haproxy_harness  # noqa: E402

N_SPREAD = 400
N_DRAIN = 800   # calls at least, in the drain part
N_BEFORE = 200  # answers before each SIGTERM
GRACE_MS = 1000  # sigterm: limits.drain_grace_ms, five of HAProxy's check intervals
N_AFTER = 200   # answers after the last restart
DRAIN_JOBS = 16
RETRIES = 20
TOL = 1e-6


def inference_count(d):
    c = tg.InferenceServerClient(d.grpc_addr)
    try:
        st = c.get_inference_statistics(MODEL, as_json=True)["model_stats"][0]
        return int(st.get("inference_count", 0))
    finally:
        c.close()


class Calls:
    """infer() with the test's retry rule, counted."""

    def __init__(self, client, crops, want):
        self.c, self.crops, self.want = client, crops, want
        self.lock = threading.Lock()
        self.done = 0
        self.retries = 0
        self.unavailable_msgs = {}
        self.other = []
        self.exhausted = 0
        self.worst = 0.0

    def one(self, i):
        k = i % len(self.crops)
        for attempt in range(RETRIES + 1):
            try:
                r = self.c.infer(MODEL, [bytes_input([self.crops[k][1]])], parameters={"tta": 1},
                                 client_timeout=60, headers={"x-call": "%d.%d" % (i, attempt)})
                v = r.as_numpy("PROBABILITIES")[0]
                with self.lock:
                    self.worst = max(self.worst, float(np.max(np.abs(v - self.want[k]))))
                    self.done += 1
                return
            except tg.InferenceServerException as e:
                with self.lock:
                    if e.status() != "StatusCode.UNAVAILABLE":
                        self.other.append("call %d: %s: %s" % (i, e.status(), e.message()))
                        return
                    key = (e.message() or "")[:90]
                    self.unavailable_msgs[key] = self.unavailable_msgs.get(key, 0) + 1
                    self.retries += 1
                time.sleep(0.05 * (attempt + 1))
        with self.lock:
            self.exhausted += 1


def main():
    scenario = sys.argv[1] if len(sys.argv) > 1 else "drain-first"
    if scenario not in ("drain-first", "sigterm"):
        raise SystemExit("usage: test_kserve_haproxy.py [drain-first|sigterm]")
    need_env()
    crops = real_crops(100, step=311)
    tmp = tempfile.mkdtemp(prefix="pd-kserve-haproxy-")
    daemons = []
    proxy = None
    try:
        for name in ("a", "b"):
            if scenario == "sigterm":
                daemons.append(Daemon(tmp, "127.0.0.1:%d" % free_port(), "127.0.0.1:%d" % free_port(),
                                      extra=["--drain-grace-ms", str(GRACE_MS)], name=name))
            else:
                daemons.append(Daemon(tmp, "127.0.0.1:%d" % free_port(), None, name=name))
        paths = [p for p, _ in crops]
        ref = native(daemons[0], paths, 1)
        labels = list(ref[paths[0]].keys())
        want = [as_vector(ref[p], labels) for p in paths]
        port = free_port()
        # sigterm: HAProxy's check asks each daemon's REST listener whether
        # it is ready (HTTP/1.1), not whether its gRPC port takes a connection
        check_on = {d.name: " port %s check-proto h1" % d.http_addr.rsplit(":", 1)[1] if scenario == "sigterm" else ""
                    for d in daemons}
        servers = "".join("  server %s %s proto h2 check%s inter 200ms fall 1 rise 1\n"
                          % (d.name, d.grpc_addr, check_on[d.name]) for d in daemons)
        if scenario == "sigterm":
            servers = ("  option httpchk\n"
                       "  http-check send meth GET uri /v2/health/ready ver HTTP/1.1 hdr Host planktond\n"
                       "  http-check expect status 200\n") + servers
        proxy = haproxy_harness.HAProxy(
            tmp, ["a", "b"],
            "frontend grpc_in\n"
            "  bind 127.0.0.1:%d proto h2\n"
            "  capture request header x-call len 16\n"
            "  default_backend planktond\n"
            "backend planktond\n"
            "  balance roundrobin\n"
            "%s" % (port, servers),
            "  mode http\n"
            "  log global\n"
            "  option httplog\n"
            "  timeout connect 1s\n"
            "  timeout client 60s\n"
            "  timeout server 60s\n"
            "  timeout check 2s\n"
            "  retries 3\n"
            "  option redispatch 1\n",
            global_extra="  log stdout format raw local0\n")
        proxy.wait_up(["a", "b"])
        client = tg.InferenceServerClient("127.0.0.1:%d" % port)

        # ---- spread: one request after the other, balanced per request ----
        before = [inference_count(d) for d in daemons]
        spread = Calls(client, crops, want)
        for i in range(N_SPREAD):
            spread.one(i)
        served = [inference_count(d) - b for d, b in zip(daemons, before)]
        print("spread: %d calls through HAProxy (h2, roundrobin): daemon a served %d, b %d; max |p - native| %.2g"
              % (N_SPREAD, served[0], served[1], spread.worst))
        check(spread.done == N_SPREAD and not spread.other and not spread.retries,
              "spread: %d of %d OK, %d retries, errors %r" % (spread.done, N_SPREAD, spread.retries, spread.other[:3]))
        check(sum(served) == N_SPREAD, "spread: the daemons served %r, want %d in all" % (served, N_SPREAD))
        check(min(served) >= N_SPREAD // 4, "spread: not spread over both daemons: %r" % served)
        check(spread.worst <= TOL, "spread: answers vs native: %g" % spread.worst)

        # ---- drain: each daemon in turn drained and started again mid-load ----
        # DRAIN_JOBS workers take call numbers until both daemons were
        # drained and restarted and N_AFTER more calls were answered (and
        # at least N_DRAIN in all)
        drain = Calls(client, crops, want)
        state = {"next": 0, "stop_at": None}
        lock = threading.Lock()

        def worker():
            while True:
                with lock:
                    i = state["next"]
                    if i >= N_DRAIN and state["stop_at"] is not None and drain.done >= state["stop_at"]:
                        return
                    state["next"] += 1
                drain.one(i)

        pool = ThreadPoolExecutor(DRAIN_JOBS)
        futs = [pool.submit(worker) for _ in range(DRAIN_JOBS)]
        exits = []
        for d in daemons:
            start_at = drain.done
            end = time.time() + 120
            while drain.done < start_at + N_BEFORE and time.time() < end:
                time.sleep(0.01)
            if scenario == "drain-first":
                # the operator's way: HAProxy stops sending it new requests
                # and its requests finish, then the daemon drains
                proxy.command("set server planktond/%s state drain" % d.name)
                end = time.time() + 30
                while proxy.stat_rows().get(d.name, {}).get("scur", "1") != "0" and time.time() < end:
                    time.sleep(0.01)
            at, owed = drain.done, state["next"] - drain.done
            d.p.send_signal(signal.SIGTERM)
            exits.append(d.p.wait(timeout=60))
            end = time.time() + 30
            while proxy.servers().get(d.name, ("",))[0].startswith("UP") and time.time() < end:
                time.sleep(0.02)
            print("drain: daemon %s got SIGTERM after %d answers, %d calls in flight (exit %d)" %
                  (d.name, at, owed, exits[-1]))
            check(owed > 0, "drain: no call in flight when daemon %s got SIGTERM" % d.name)
            d.start()
            if scenario == "drain-first":
                proxy.command("set server planktond/%s state ready" % d.name)
            proxy.wait_up([d.name])
        with lock:
            state["stop_at"] = drain.done + N_AFTER
        for f in futs:
            f.result(timeout=300)
        pool.shutdown()
        n_drain = state["next"]
        rows = proxy.stat_rows()
        print("drain: %d calls, %d DRAIN_JOBS at a time: %d OK, %d retries after UNAVAILABLE, %d other errors, "
              "%d out of retries; max |p - native| %.2g" %
              (n_drain, DRAIN_JOBS, drain.done, drain.retries, len(drain.other), drain.exhausted, drain.worst))
        for msg, n in sorted(drain.unavailable_msgs.items(), key=lambda x: -x[1]):
            print("  UNAVAILABLE x%d: %s" % (n, msg))
        for n in ("a", "b"):
            r = rows.get(n, {})
            print("haproxy server %s: %s requests, %s connection errors, %s response errors, %s retries, "
                  "%s redispatches" % (n, r.get("stot"), r.get("econ"), r.get("eresp"), r.get("wretr"),
                                       r.get("wredis")))
        check(exits == [0, 0], "drain: the daemons exited %r after SIGTERM" % exits)
        check(drain.done == n_drain, "drain: %d of %d calls ended OK" % (drain.done, n_drain))
        check(not drain.other, "drain: calls failed other than UNAVAILABLE: %r" % drain.other[:5])
        check(drain.exhausted == 0, "drain: %d calls still UNAVAILABLE after %d retries" % (drain.exhausted, RETRIES))
        check(drain.worst <= TOL, "drain: answers vs native: %g" % drain.worst)
        client.close()
    finally:
        if proxy:
            proxy.stop()
        for d in daemons:
            if d.p and d.p.poll() is None:
                d.stop()
    print("logs in", tmp)
    finish("kserve_haproxy " + scenario)


if __name__ == "__main__":
    main()
