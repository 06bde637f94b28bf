"""test_client_rolling: nothing lost at the client in rolling restarts and
crashes.

Real daemons (planktond with the tiny test model), the real CLI, and for the
balancer cases a real HAProxy (Debian's) in TCP mode on 127.0.0.1 with
leastconn and an external health check that runs `plankton-client health`
(the check client/README.md documents for operators). One scenario per run
(argv[1]):

  haproxy-rolling  two daemons behind HAProxy; one is drained (SIGTERM) and
                   started again, then the other
  haproxy-kill     two daemons behind HAProxy; the one serving the client is
                   killed (SIGKILL) mid-load and started again
  haproxy-many     two daemons behind HAProxy and eight clients (-j 8, 250
                   crops each) at once; one daemon drained and started
                   again, then the other
  unix             one daemon on a Unix socket, drained and started again on
                   the same socket, then killed and started again

In each, `plankton-client classify -j 64 --retry-for 30 -f csv --probs -` of
2,000 crops (haproxy-many: eight of them, 250 crops each) (links to a few hundred distinct real NDSB crops from
$PLANKTON_DATA) runs through the disruptions, which start once a given
number of answers are out (so they happen mid-load). Every crop must appear
exactly once in the output with the engine's own distribution for it
(`planktond-model run --probs`), the exit code must be 0, and the summary on
stderr must show the reconnects, and where a daemon serving a client is
drained, the drain notice it got (the client sends Hello with
drain_notices). Exit 77 (skipped) without the data.
"""
import collections
import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "cli"))
import cli_harness as h  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import haproxy_harness  # noqa: E402

N_CROPS = 2000
DISTINCT = 400
TOL = 2e-5
CLI_TIMEOUT = 110  # the whole classify run, a bound against hanging (meson's timeout is 120)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Planktond:
    """One planktond, restartable on the same address (its log is kept across runs)."""

    def __init__(self, tmp, name, tcp_port=None):
        self.name = name
        self.socket = os.path.join(tmp, name + ".sock")
        self.tcp_port = tcp_port
        self.log_path = os.path.join(tmp, name + ".log")
        self.proc = None
        self.starts = 0

    def address_args(self):
        if self.tcp_port:
            return ["--tcp", "127.0.0.1:%d" % self.tcp_port]
        return ["--socket", self.socket]

    def start(self):
        cmd = [h.env("PLANKTOND"), "--socket", self.socket, "--model", h.env("PD_TEST_MODEL"),
               "--threads", "1", "--log-level", "warning"]
        if self.tcp_port:
            cmd += ["--tcp", "127.0.0.1:%d" % self.tcp_port]
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        self.starts += 1
        # the CLI's own wait: no sleep loop here
        r = h.run_cli(self.address_args() + ["health", "--wait", "60"])
        if r.rc != 0:
            raise SystemExit("%s did not come up: %r\n%s" % (self.name, r, open(self.log_path).read()))

    def drain(self):
        """SIGTERM (the daemon answers what it read, then exits) and wait for the exit."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(60)
        if rc != 0:
            raise SystemExit("%s exited %d after SIGTERM:\n%s" % (self.name, rc, open(self.log_path).read()))

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(60)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class HAProxy(haproxy_harness.HAProxy):
    """HAProxy in TCP mode in front of the daemons, with leastconn and an
    external check that runs `plankton-client health`."""

    def __init__(self, tmp, daemons):
        self.port = free_port()
        check = os.path.join(tmp, "plankton-check.sh")
        with open(check, "w") as f:
            # HAProxy runs it as: CHECK PROXY_ADDR PROXY_PORT SERVER_ADDR SERVER_PORT
            f.write("#!/bin/sh\nexec %s --tcp \"$3:$4\" --timeout 1 health -q\n" % h.env("PLANKTON_CLIENT"))
        os.chmod(check, 0o755)
        servers = "".join("  server %s 127.0.0.1:%d check inter 200ms fall 1 rise 1\n"
                          % (d.name, d.tcp_port) for d in daemons)
        super().__init__(tmp, [d.name for d in daemons],
                         "listen planktond\n"
                         "  bind 127.0.0.1:%d\n"
                         "  balance leastconn\n"
                         "  option external-check\n"
                         "  external-check path \"/usr/bin:/bin\"\n"
                         "  external-check command %s\n"
                         "%s" % (self.port, check, servers),
                         "  mode tcp\n"
                         "  timeout connect 1s\n"
                         "  timeout client 60s\n"
                         "  timeout server 60s\n"
                         "  timeout check 2s\n"
                         "  retries 3\n"
                         "  option redispatch 1\n",
                         global_extra="  insecure-fork-wanted\n  external-check\n")


def pick_crops(n):
    """n distinct real crops, spread over the classes (sorted, deterministic)."""
    root = h.data_root()
    classes = sorted(c for c in os.listdir(root) if os.path.isdir(os.path.join(root, c)))
    per_class = {c: sorted(x for x in os.listdir(os.path.join(root, c)) if x.endswith(".jpg"))
                 for c in classes}
    out, k = [], 0
    while len(out) < n:
        took = False
        for c in classes:
            if k < len(per_class[c]) and len(out) < n:
                out.append(os.path.join(root, c, per_class[c][k]))
                took = True
        if not took:
            print("skipped: only %d crops under %s, need %d" % (len(out), root, n))
            sys.exit(h.SKIP)
        k += 1
    return out


class Load:
    """plankton-client classify - in the background; the paths are fed in
    batches (the CLI classifies them as they arrive), so that each disruption
    starts while requests are in flight and more are coming, however fast
    the machine is."""

    def __init__(self, tmp, address_args, paths, name="classify", jobs=64):
        self.out = os.path.join(tmp, name + ".csv")
        self.err_path = os.path.join(tmp, name + ".err")
        self.paths, self.fed = paths, 0
        cmd = [h.env("PLANKTON_CLIENT")] + address_args + [
            "classify", "-j", str(jobs), "--retry-for", "30", "-f", "csv", "--probs", "-o", self.out,
            "-"]
        with open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                         stderr=err)
        self.started = time.time()

    def feed(self, upto):
        """Writes the paths up to index upto (all: None) and, at the end, closes stdin."""
        upto = len(self.paths) if upto is None else upto
        data = "".join(p + "\n" for p in self.paths[self.fed:upto]).encode()
        self.fed = upto
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
            if self.fed == len(self.paths):
                self.proc.stdin.close()
        except BrokenPipeError:  # the client ended early: its checks say how
            self.fed = len(self.paths)
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass

    def rows(self):
        try:
            with open(self.out, "rb") as f:
                return max(0, f.read().count(b"\n") - 1)  # less the header
        except FileNotFoundError:
            return 0

    def wait_rows(self, n):
        """Until n answers are out; False if the run ended first (the disruption would
        not be mid-load)."""
        while self.proc.poll() is None and time.time() - self.started < CLI_TIMEOUT:
            if self.rows() >= n:
                return True
            time.sleep(0.01)
        return False

    def finish(self):
        if not self.proc.stdin.closed:
            self.feed(None)
        try:
            rc = self.proc.wait(max(1, CLI_TIMEOUT - (time.time() - self.started)))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = -9
        with open(self.err_path) as f:
            return rc, f.read()


def wait_total_rows(loads, n):
    """Until the loads together have n answers out; False if one ended first."""
    while all(x.proc.poll() is None for x in loads) and \
            time.time() - loads[0].started < CLI_TIMEOUT:
        if sum(x.rows() for x in loads) >= n:
            return True
        time.sleep(0.01)
    return False


def check_output(f, name, load, rc, err, link_crop, ref, labels, need_retries=True):
    """Checks one run's output; returns its retry counters (zeros without the line)."""
    links = load.paths
    f.check(rc == 0, "%s: classify exits 0 (got %d): %s" % (name, rc, err[-2000:]))
    with open(load.out, newline="") as fh:
        rows = list(csv.reader(fh))
    f.check(rows and rows[0] == ["path"] + labels, "%s: csv --probs header" % name)
    body = rows[1:]
    seen = collections.Counter(r[0] for r in body)
    missing = [p for p in links if seen[p] == 0]
    dups = sum(c - 1 for c in seen.values() if c > 1)
    strangers = [p for p in seen if p not in set(links)]
    f.check(len(body) == len(links), "%s: %d rows, want %d" % (name, len(body), len(links)))
    f.check(not missing, "%s: %d crops missing, e.g. %r" % (name, len(missing), missing[:3]))
    f.check(dups == 0, "%s: %d duplicated rows" % (name, dups))
    f.check(not strangers, "%s: rows for paths never sent: %r" % (name, strangers[:3]))
    wrong = 0
    for r in body:
        if r[0] not in link_crop:
            continue
        got = np.array([float(x) for x in r[1:]], dtype=np.float64)
        if got.shape != (len(labels),) or np.max(np.abs(got - ref[link_crop[r[0]]])) > TOL:
            wrong += 1
    f.check(wrong == 0, "%s: %d answers differ from the engine's" % (name, wrong))
    m = re.search(r"retries: (\d+) reconnects? \((\d+) attempts?\), (\d+) requests? resent, "
                  r"(\d+) UNAVAILABLE answers? and (\d+) drain notices? taken as 'ask elsewhere', "
                  r"(\d+) duplicate answers? dropped, (\d+) requests? failed after retries", err)
    if need_retries:
        f.check(m is not None, "%s: the summary shows the retry counters: %r" % (name, err[-1500:]))
    reconnects = resent = unavailable = notices = dropped = failed = 0
    if m:
        reconnects, _, resent, unavailable, notices, dropped, failed = (int(x) for x in m.groups())
        f.check(reconnects >= 1 or not need_retries,
                "%s: at least one reconnect (%d)" % (name, reconnects))
        f.check(failed == 0, "%s: no request failed after retries (%d)" % (name, failed))
    print("%s: crops sent %d, answered %d (distinct %d), duplicated %d, missing %d, wrong %d; "
          "client: %d reconnects, %d resent, %d UNAVAILABLE, %d drain notices, "
          "%d duplicate answers dropped, %d failed; %.1f s"
          % (name, len(links), len(body), len(seen), dups, len(missing), wrong, reconnects, resent,
             unavailable, notices, dropped, failed, time.time() - load.started))
    return {"reconnects": reconnects, "resent": resent, "failed": failed, "notices": notices}


def main():
    scenario = sys.argv[1] if len(sys.argv) > 1 else ""
    if scenario not in ("haproxy-rolling", "haproxy-kill", "haproxy-many", "unix"):
        raise SystemExit("usage: test_client_rolling.py haproxy-rolling|haproxy-kill|haproxy-many|unix")
    if scenario.startswith("haproxy") and not shutil.which("haproxy"):
        raise SystemExit("haproxy is not installed (scripts/setup installs it)")
    crops = pick_crops(DISTINCT)
    f = h.Failures("client_rolling " + scenario)
    tmp = tempfile.mkdtemp(prefix="pc-rolling-")
    daemons, proxy = [], None
    try:
        links, link_crop = [], {}
        os.makedirs(os.path.join(tmp, "in"))
        for i in range(N_CROPS):
            p = os.path.join(tmp, "in", "crop_%04d.jpg" % i)
            os.symlink(crops[i % DISTINCT], p)
            links.append(p)
            link_crop[p] = i % DISTINCT
        ref = h.engine_probs(crops)
        labels = h.model_classes()

        if scenario == "unix":
            d = Planktond(tmp, "d1")
            daemons.append(d)
            # health --wait gives up with the usual code and says so
            r = h.run_cli(d.address_args() + ["health", "--wait", "0.3"])
            f.check(r.rc == 3 and "not serving after 0.3 s" in r.err,
                    "health --wait on no daemon: exit 3 and a message: %r" % r)
            d.start()
            load = Load(tmp, d.address_args(), links)
            load.feed(800)
            f.check(load.wait_rows(300), "unix: the load still runs at the drain")
            d.drain()
            d.start()
            load.feed(1400)
            f.check(load.wait_rows(1000), "unix: the load still runs at the kill")
            d.kill()
            d.start()
        else:
            daemons = [Planktond(tmp, "d1", free_port()), Planktond(tmp, "d2", free_port())]
            for d in daemons:
                d.start()
            proxy = HAProxy(tmp, daemons)
            proxy.wait_up([d.name for d in daemons])
            front = ["--tcp", "127.0.0.1:%d" % proxy.port]
            if scenario == "haproxy-many":
                per = N_CROPS // 8
                loads = [Load(tmp, front, links[i * per:(i + 1) * per], "classify%d" % i, jobs=8)
                         for i in range(8)]
                for i, d in enumerate(daemons):
                    for x in loads:
                        x.feed(150 + 70 * i)
                    f.check(wait_total_rows(loads, 300 + 1100 * i),
                            "many: the loads still run when %s is drained" % d.name)
                    d.drain()
                    d.start()
                    proxy.wait_up([d.name])
                total = {"reconnects": 0, "resent": 0, "failed": 0, "notices": 0}
                for i, x in enumerate(loads):
                    rc, err = x.finish()
                    got = check_output(f, "%s client %d" % (scenario, i), x, rc, err, link_crop, ref,
                                       labels, need_retries=False)
                    for k in total:
                        total[k] += got[k]
                f.check(total["reconnects"] >= 1, "many: some client reconnected: %r" % total)
                f.check(total["notices"] >= 1, "many: some client got a drain notice: %r" % total)
                print("%s: 8 clients, %d crops: %d reconnects, %d resent, %d drain notices, "
                      "%d failed in all" % (scenario, N_CROPS, total["reconnects"], total["resent"],
                                            total["notices"], total["failed"]))
                load = None
            else:
                load = Load(tmp, front, links)
            by_name = {d.name: d for d in daemons}
            if scenario == "haproxy-rolling":
                for i, d in enumerate(daemons):
                    load.feed(800 + 600 * i)
                    f.check(load.wait_rows(300 + 700 * i),
                            "rolling: the load still runs when %s is drained" % d.name)
                    d.drain()
                    d.start()
                    proxy.wait_up([d.name])
            elif scenario == "haproxy-kill":
                load.feed(1200)
                f.check(load.wait_rows(500), "kill: the load still runs at the kill")
                victim = by_name.get(proxy.serving_client() or "", daemons[0])
                victim.kill()
                victim.start()
                proxy.wait_up([victim.name])
        if load:
            rc, err = load.finish()
            got = check_output(f, scenario, load, rc, err, link_crop, ref, labels)
            if scenario != "haproxy-kill":  # a drain of the daemon serving it: noticed
                f.check(got["notices"] >= 1, "%s: a drain notice (%r)" % (scenario, got))
    finally:
        if proxy:
            proxy.stop()
        for d in daemons:
            d.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    f.finish()


if __name__ == "__main__":
    main()
