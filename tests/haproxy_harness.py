"""haproxy_harness: a real HAProxy (Debian's) in front of test daemons, for
the tests that put a balancer in front of planktond
(tests/test_client_rolling.py: TCP mode, the native protocol;
tests/kserve/test_kserve_haproxy.py: HTTP mode over h2, gRPC).

The caller gives the proxy sections (frontend/backend/listen) and the
server names; this writes the configuration with a global section (an
admin stats socket) and the caller's defaults, runs `haproxy -db`, reads
each server's status and counts from the stats socket, waits until
HAProxy's own checks see servers up, and stops it.
"""
import csv
import os
import socket
import subprocess
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class HAProxy:
    def __init__(self, tmp, names, sections, defaults, global_extra=""):
        self.names = list(names)
        self.stats = os.path.join(tmp, "haproxy-stats.sock")
        self.cfg = os.path.join(tmp, "haproxy.cfg")
        with open(self.cfg, "w") as f:
            f.write("global\n"
                    "  maxconn 256\n"
                    "  stats socket %s level admin\n"
                    "%s"
                    "defaults\n"
                    "%s"
                    "%s" % (self.stats, global_extra, defaults, sections))
        self.log_path = os.path.join(tmp, "haproxy.log")
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(["haproxy", "-db", "-f", self.cfg],
                                         stdout=log, stderr=subprocess.STDOUT)

    def command(self, line):
        """One runtime API command on the stats socket: its answer ("" when
        the socket does not answer yet)."""
        try:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(2)
            s.connect(self.stats)
            s.sendall(line.encode() + b"\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            s.close()
        except OSError:
            return ""
        return data.decode()

    def stat_rows(self):
        """{server: {column: value}} of `show stat` ({} if not up yet)."""
        rows = list(csv.reader(self.command("show stat").lstrip("# ").splitlines()))
        if not rows:
            return {}
        head = rows[0]
        out = {}
        for r in rows[1:]:
            if len(r) == len(head) and r[head.index("svname")] in self.names:
                out[r[head.index("svname")]] = dict(zip(head, r))
        return out

    def servers(self):
        """{server: (status, current sessions)} ({} if not up yet)."""
        return {n: (r["status"], int(r["scur"] or 0)) for n, r in self.stat_rows().items()}

    def wait_up(self, names, bound_s=60):
        """Until HAProxy's own check sees every server named up."""
        end = time.time() + bound_s
        while time.time() < end:
            if self.proc.poll() is not None:
                raise SystemExit("haproxy exited:\n" + open(self.log_path).read())
            st = self.servers()
            if all(st.get(n, ("",))[0].startswith("UP") for n in names):
                return
            time.sleep(0.05)
        raise SystemExit("haproxy never saw %s up: %r\n%s" % (names, self.servers(), open(self.log_path).read()))

    def serving_client(self):
        """A server that holds a session now (None when none does)."""
        for name, (_, scur) in self.servers().items():
            if scur > 0:
                return name
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
