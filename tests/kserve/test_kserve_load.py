#!/usr/bin/env python3
"""test_kserve_load: bench/kserve_load (the C gRPC load generator of
bench/kserve) against a real planktond's KServe gRPC front end.

Four clients for about a second, streaming (raw UINT8 tensors) and unary
(PNG as BYTES): exit 0, requests > 0, errors=0, every answer it counted
reached the daemon (/metrics' successful inference count grew by at least
`answered`). Then a model the daemon does not serve: exit 1, errors > 0 and
the daemon's own message on stderr (its errors are counted, not ignored).
The daemon keeps serving and stops cleanly.

env: as kserve_harness; KSERVE_LOAD (the binary), PD_KSERVE_MODEL
"""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kserve_harness import MODEL, Daemon, check, finish, free_port, skip  # noqa: E402


def ok_count(d):
    m = re.search(r"^planktond_inference_request_success_total (\S+)$", d.metrics(), re.M)
    return float(m.group(1)) if m else -1.0


def run(tool, addr, model, mode, fmt):
    cmd = [tool, "--address", addr, "--model", model, "--mode", mode, "--format", fmt, "--clients", "4",
           "--seconds", "1", "--warmup", "0.2"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    print("$ %s\n%s%s" % (" ".join(cmd[1:]), p.stdout, p.stderr), flush=True)
    f = dict(re.findall(r"(\w+)=(\S+)", p.stdout))
    return p, f


def main():
    tool = os.environ.get("KSERVE_LOAD")
    if not tool or not os.environ.get("PLANKTOND"):
        skip("$KSERVE_LOAD or $PLANKTOND is not set (run through meson test)")
    with tempfile.TemporaryDirectory(prefix="pd-kserve-load-") as tmp:
        addr = "127.0.0.1:%d" % free_port()
        d = Daemon(tmp, addr, None)
        try:
            for mode, fmt in (("stream", "raw"), ("unary", "png")):
                before = ok_count(d)
                p, f = run(tool, addr, MODEL, mode, fmt)
                after = ok_count(d)
                check(p.returncode == 0, "%s %s: exit %d" % (mode, fmt, p.returncode))
                check(f.get("mode") == mode, "%s %s: the line names mode %r" % (mode, fmt, f.get("mode")))
                check(int(f.get("requests", "0")) > 0, "%s %s: requests=%s, want > 0" % (mode, fmt, f.get("requests")))
                check(f.get("errors") == "0", "%s %s: errors=%s, want 0" % (mode, fmt, f.get("errors")))
                answered = int(f.get("answered", "0"))
                check(answered >= int(f.get("requests", "0")) > 0,
                      "%s %s: answered=%s covers requests=%s" % (mode, fmt, f.get("answered"), f.get("requests")))
                check(after - before >= answered,
                      "%s %s: the daemon's OK count grew by %.0f, the tool counted %d answers"
                      % (mode, fmt, after - before, answered))
            for mode in ("stream", "unary"):
                p, f = run(tool, addr, "no-such-model", mode, "raw")
                check(p.returncode == 1, "unknown model, %s: exit %d, want 1" % (mode, p.returncode))
                check(int(f.get("errors", "0")) > 0, "unknown model, %s: errors=%s, want > 0" % (mode, f.get("errors")))
                check(f.get("requests") == "0", "unknown model, %s: requests=%s, want 0" % (mode, f.get("requests")))
                check("no-such-model" in p.stderr, "unknown model, %s: the daemon's message on stderr: %r"
                      % (mode, p.stderr.strip()))
            check(d.ready(), "the daemon still serves")
        finally:
            rc = d.stop()
        check(rc == 0, "planktond exited %d on SIGTERM (log %s)" % (rc, d.log_path))
    finish("kserve_load")


if __name__ == "__main__":
    main()
