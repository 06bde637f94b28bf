#!/usr/bin/env python3
"""systemd glue: the units pass `systemd-analyze verify` (offline; ExecStart
pointed at the built planktond), the example planktond.yaml passes
`planktond --check-config` (a bad one fails with its line), a model that
does not load stops the start with exit 1 and its path, and socket
activation works: under
systemd-socket-activate (which passes a listening socket the way
planktond.socket does, with LISTEN_FDS and LISTEN_FDNAMES) planktond serves a
Health request on the inherited socket without binding one itself, and
drains on SIGTERM.

  test_systemd.py PLANKTOND SERVICE_FILE SYSTEMD_SRC_DIR MODEL_DIR

Exits 1 on failure, systemd-analyze or systemd-socket-activate missing included (scripts/setup installs them).
"""
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def health_request(req_id: int) -> bytes:
    inner = b"\x08" + bytes([req_id])          # HealthRequest.id (field 1, varint)
    return frame(b"\x1a" + bytes([len(inner)]) + inner)  # Request.health (field 3)


def read_frame(sock: socket.socket) -> bytes:
    def exactly(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise RuntimeError("connection closed after %d of %d bytes" % (len(buf), n))
            buf += chunk
        return buf
    (n,) = struct.unpack(">I", exactly(4))
    return exactly(n)


def main():
    planktond, service, src_dir, model, client = sys.argv[1:6]
    failures = []
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        # scripts/setup installs systemd: without it the units cannot be checked, a failure
        print("FAIL: systemd-analyze not found (scripts/setup installs the systemd package)",
              file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="pd-systemd-") as tmp:
        # 1. the units, with ExecStart at the built binary
        text = open(service).read()
        exec_line = [l for l in text.splitlines() if l.startswith("ExecStart=")][0]
        installed = exec_line.split("=", 1)[1].split()[0]
        # and ExecReload at the built plankton-client (`reload --pid $MAINPID`)
        reload_line = [l for l in text.splitlines() if l.startswith("ExecReload=")][0]
        installed_client = reload_line.split("=", 1)[1].lstrip("+").split()[0]
        if "reload --pid $MAINPID" not in reload_line:
            failures.append("ExecReload does not wait for the reload's result: %s" % reload_line)
        open(os.path.join(tmp, "planktond.service"), "w").write(
            text.replace(installed, planktond).replace(installed_client, client))
        for unit in ("planktond.socket", "planktond-metrics.socket"):
            shutil.copy(os.path.join(src_dir, unit), tmp)
        units = [os.path.join(tmp, u) for u in
                 ("planktond.service", "planktond.socket", "planktond-metrics.socket")]
        p = subprocess.run([analyze, "verify", "--man=no"] + units, capture_output=True, text=True)
        out = (p.stdout + p.stderr).strip()
        print("systemd-analyze verify: exit %d%s" % (p.returncode, (": " + out) if out else ""))
        if p.returncode != 0 or out:
            failures.append("systemd-analyze verify: %s" % out)
        for needle in ("Type=notify", "ProtectSystem=strict", "NoNewPrivileges=yes",
                       "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "DynamicUser=yes"):
            if needle not in text:
                failures.append("planktond.service lacks %s" % needle)

        # 2. the example config
        # (--check-config loads the model: the example's installed one may not be here)
        p = subprocess.run([planktond, "--check-config", os.path.join(src_dir, "planktond.yaml"),
                            "--model", model, "--socket", os.path.join(tmp, "check", "p.sock")],
                           capture_output=True, text=True)
        print("check-config example: %s" % (p.stdout + p.stderr).strip())
        if p.returncode != 0:
            failures.append("example config: %s" % p.stderr.strip())
        bad = os.path.join(tmp, "bad.yaml")
        open(bad, "w").write("batching:\n  max_batch: 64\n  max_batches: 2\n")
        p = subprocess.run([planktond, "--check-config", bad], capture_output=True, text=True)
        print("check-config bad: exit %d: %s" % (p.returncode, p.stderr.strip()))
        if p.returncode == 0 or "bad.yaml:3" not in p.stderr or "max_batches" not in p.stderr:
            failures.append("bad config not reported with its line: %r" % p.stderr)

        # 3. a model that does not load: a clear message and exit 1
        missing = os.path.join(tmp, "no-such-model")
        p = subprocess.run([planktond, "--socket", os.path.join(tmp, "x.sock"), "--model", missing],
                           capture_output=True, text=True, timeout=60)
        print("missing model: exit %d: %s" % (p.returncode, p.stderr.strip().splitlines()[-1]))
        if p.returncode != 1 or missing not in p.stderr:
            failures.append("missing model: exit %d, stderr %r" % (p.returncode, p.stderr))

        # 4. socket activation
        activate = shutil.which("systemd-socket-activate")
        if not os.path.exists(os.path.join(model, "model.yaml")):
            failures.append("socket activation: no test model at %s" % model)
        elif activate:
            sock_path = os.path.join(tmp, "activated.sock")
            log = open(os.path.join(tmp, "daemon.log"), "w+")
            proc = subprocess.Popen([activate, "-l", sock_path, "--fdname=api", planktond,
                                     "--socket", "", "--model", model],
                                    stdout=log, stderr=log)
            try:
                deadline = time.time() + 30
                while not os.path.exists(sock_path) and time.time() < deadline:
                    time.sleep(0.05)
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(30)
                while True:  # the file appears at bind(), before listen()
                    try:
                        s.connect(sock_path)
                        break
                    except ConnectionRefusedError:
                        if time.time() > deadline:
                            raise
                        time.sleep(0.05)
                s.sendall(health_request(7))
                reply = read_frame(s)
                s.close()
                ok = b"serving" in reply
                print("socket activation: health answer %s" % ("serving" if ok else repr(reply)))
                if not ok:
                    failures.append("socket activation: unexpected answer %r" % reply)
            except (OSError, RuntimeError) as e:
                failures.append("socket activation: %s" % e)
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = -1
            log.seek(0)
            text = log.read()
            if code != 0 or "unix:" + sock_path not in text:
                failures.append("socket activation: exit %d, log:\n%s" % (code, text))
        else:
            failures.append("socket activation: systemd-socket-activate not found "
                            "(scripts/setup installs the systemd package)")

    for f in failures:
        print("FAIL:", f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
