#!/usr/bin/env python3
"""`planktond --check-config FILE`: every problem of the file, not just the
first, each with its file:line (both settings' places for a check that
involves two), and what can be checked without starting: the model folder
loads, the socket group exists, the socket's folder exists or can be
created. Exit 1 with problems, 0 (and "ok") without.

usage: test_check_config.py PLANKTOND TEST_MODEL_DIR
"""
import os
import subprocess
import sys
import tempfile


def check(planktond, path, *extra):
    p = subprocess.run([planktond, "--check-config", path] + list(extra), capture_output=True,
                       text=True, timeout=60)
    print("$ planktond --check-config %s %s -> exit %d\n%s%s" % (
        os.path.basename(path), " ".join(extra), p.returncode, p.stdout, p.stderr))
    return p


def main():
    planktond, model = sys.argv[1:3]
    failures = []

    def expect(cond, what):
        if not cond:
            failures.append(what)

    with tempfile.TemporaryDirectory(prefix="pd-check-") as tmp:
        good_socket = os.path.join(tmp, "run", "planktond", "p.sock")  # folders to be created

        # 1. three errors in one file: an out-of-range value (line 3), an unknown key
        # (line 4) and two settings that disagree (lines 6 and 7): all three, each with
        # its line, and the good settings around them do not hide them
        three = os.path.join(tmp, "three.yaml")
        open(three, "w").write(
            "batching:\n"                   # 1
            "  max_queue_delay_us: 100\n"   # 2
            "  max_batch: 0\n"              # 3: out of range
            "  max_batchez: 4\n"            # 4: unknown key
            "limits:\n"                     # 5
            "  max_frame_bytes: 200000\n"   # 6
            "  max_receive_bytes: 100000\n"  # 7: below max_frame_bytes (line 6)
            "model:\n"                      # 8
            "  dir: %s\n"                   # 9
            "listen:\n"                     # 10
            "  socket: %s\n" % (model, good_socket))
        p = check(planktond, three)
        expect(p.returncode == 1, "three errors: exit %d, not 1" % p.returncode)
        lines = [l for l in p.stderr.splitlines() if l.startswith(three + ":")]
        expect(len(lines) == 3, "three errors: %d problem lines, not 3: %r" % (len(lines), lines))
        expect(any(l.startswith(three + ":3:") and "max_batch" in l and "out of range" in l
                   for l in lines), "three errors: line 3 (max_batch 0) not reported")
        expect(any(l.startswith(three + ":4:") and "max_batchez" in l for l in lines),
               "three errors: line 4 (unknown key) not reported")
        expect(any(l.startswith(three + ":7:") and "max_receive_bytes" in l
                   and three + ":6" in l for l in lines),
               "three errors: lines 7 and 6 (max_receive_bytes < max_frame_bytes) not reported")
        expect("3 problems" in p.stderr, "three errors: no count of 3")

        # 2. the same settings, fixed: ok
        fixed = os.path.join(tmp, "fixed.yaml")
        open(fixed, "w").write("batching:\n  max_batch: 8\nmodel:\n  dir: %s\nlisten:\n"
                               "  socket: %s\n" % (model, good_socket))
        p = check(planktond, fixed)
        expect(p.returncode == 0 and "ok" in p.stdout, "fixed file: exit %d" % p.returncode)
        expect(not os.path.exists(os.path.dirname(good_socket)),
               "--check-config created the socket's folder")

        # 3. a model folder that does not load (and one that is not a model)
        missing = os.path.join(tmp, "no-such-model")
        nomodel = os.path.join(tmp, "missing-model.yaml")
        open(nomodel, "w").write("listen:\n  socket: %s\nmodel:\n  dir: %s\n"
                                 % (good_socket, missing))
        p = check(planktond, nomodel)
        expect(p.returncode == 1 and (nomodel + ":4:") in p.stderr and missing in p.stderr,
               "missing model folder not reported at line 4")
        broken = os.path.join(tmp, "broken-model")
        os.mkdir(broken)
        open(os.path.join(broken, "model.yaml"), "w").write("name: x\n")
        p = check(planktond, fixed, "--model", broken)
        expect(p.returncode == 1 and "--model" in p.stderr and broken in p.stderr,
               "a folder that is not a model not reported (with --model)")

        # 4. a group that does not exist
        badgroup = os.path.join(tmp, "group.yaml")
        open(badgroup, "w").write("model:\n  dir: %s\nlisten:\n  socket: %s\n"
                                  "  socket_group: no-such-group-pd\n" % (model, good_socket))
        p = check(planktond, badgroup)
        expect(p.returncode == 1 and (badgroup + ":5:") in p.stderr
               and "no-such-group-pd" in p.stderr, "bad group not reported at line 5")

        # 5. a socket folder that cannot be created (a file where a folder should be)
        blocker = os.path.join(tmp, "a-file")
        open(blocker, "w").write("")
        nodir = os.path.join(tmp, "nodir.yaml")
        bad_socket = os.path.join(blocker, "sub", "p.sock")
        open(nodir, "w").write("model:\n  dir: %s\nlisten:\n  socket: %s\n" % (model, bad_socket))
        p = check(planktond, nodir)
        expect(p.returncode == 1 and (nodir + ":4:") in p.stderr and "listen.socket" in p.stderr
               and bad_socket in p.stderr, "socket folder that cannot be created not reported")

        # 6. the daemon itself creates a missing socket folder (what "can be created" means)
        d = subprocess.Popen([planktond, "--config", fixed, "--backend", "cpu"],
                             stderr=subprocess.PIPE, text=True)
        try:
            for _ in range(600):
                if os.path.exists(good_socket) or d.poll() is not None:
                    break
                subprocess.run(["sleep", "0.1"])
            expect(os.path.exists(good_socket), "the daemon did not create its socket's folder")
        finally:
            d.terminate()
            d.wait(timeout=30)

    for f in failures:
        print("FAIL: " + f, file=sys.stderr)
    print("check_config: %d failures" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
