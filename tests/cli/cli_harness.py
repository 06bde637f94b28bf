"""cli_harness: what the plankton-client tests share.

Runs a real planktond (the binary from $PLANKTOND, the tiny random-weight
model from $PD_TEST_MODEL) on a socket in a fresh temporary folder, waits
until `plankton-client health` answers, runs the real CLI binary
($PLANKTON_CLIENT) and captures its output and exit code, copies a handful
of real NDSB crops ($PLANKTON_DATA/train) into a small class-folder tree,
and computes the engine's own probabilities for images with
`planktond-model run --probs` ($PLANKTOND_MODEL_TOOL) to check the CLI's
lines against. Exit code 77 (meson's "skipped") when the data is absent.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

SKIP = 77


def env(name):
    v = os.environ.get(name)
    if not v:
        raise SystemExit("set %s (tests/meson.build does)" % name)
    return v


class Failures:
    """Collects failed checks; finish() prints a summary and exits."""

    def __init__(self, name):
        self.name, self.checks, self.failed = name, 0, 0

    def check(self, cond, what):
        self.checks += 1
        if not cond:
            self.failed += 1
            print("FAIL: %s" % what, file=sys.stderr)
        return cond

    def finish(self):
        print("%s: %d checks, %d failed" % (self.name, self.checks, self.failed))
        sys.exit(1 if self.failed else 0)


class Result:
    def __init__(self, rc, out, err):
        self.rc, self.out, self.err = rc, out, err

    def __repr__(self):
        return "exit %d\n--- stdout\n%s--- stderr\n%s" % (self.rc, self.out[:2000], self.err[:2000])


def run_cli(args, socket=None, stdin=None, env_extra=None, timeout=300, cwd=None, binary=False,
            prefix=()):
    """Runs [PREFIX...] plankton-client [--socket S] ARGS (in cwd); returns Result(rc, stdout,
    stderr), as bytes when binary (for file names that are not UTF-8)."""
    cmd = list(prefix) + [env("PLANKTON_CLIENT")]
    if socket:
        cmd += ["--socket", socket]
    e = dict(os.environ)
    e.pop("PLANKTON_SOCKET", None)
    if env_extra:
        e.update(env_extra)
    p = subprocess.run(cmd + list(args), input=stdin, capture_output=True, text=not binary, env=e,
                       timeout=timeout, cwd=cwd)
    return Result(p.returncode, p.stdout, p.stderr)


def free_port():
    """A loopback TCP port nothing listened on a moment ago (for "nothing answers there"
    cases; a daemon that needs a port takes port 0 and Daemon.logged_port)."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Daemon:
    """planktond on DIR/planktond.sock with the test model."""

    def __init__(self, extra=()):
        self.dir = tempfile.mkdtemp(prefix="pc-cli-test-")
        self.socket = os.path.join(self.dir, "planktond.sock")
        self.log_path = os.path.join(self.dir, "daemon.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [env("PLANKTOND"), "--socket", self.socket, "--model", env("PD_TEST_MODEL"),
             "--threads", "1", "--log-level", "warning"] + list(extra),
            stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit("planktond exited at start-up (%d):\n%s"
                                 % (self.proc.returncode, open(self.log_path).read()))
            if os.path.exists(self.socket) and run_cli(["--timeout", "2", "health", "-q"],
                                                       socket=self.socket).rc == 0:
                return
            time.sleep(0.1)
        self.close()
        raise SystemExit("planktond not ready after 60 s")

    def logged_port(self, needle, timeout=10):
        """The port after `needle` (e.g. "listening on tcp:127.0.0.1:") in the daemon's log:
        what a listener given port 0 bound."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = open(self.log_path, errors="replace").read()
            at = text.find(needle)
            if at >= 0:
                digits = re.match(r"\d+", text[at + len(needle):])
                if digits:
                    return int(digits.group(0))
            time.sleep(0.05)
        raise SystemExit("FAIL: %r not in the daemon's log:\n%s" % (needle, text[-2000:]))

    def stop(self):
        """SIGTERM, then waits (30 s, then SIGKILL). Returns None when the daemon drained and
        exited 0, else what went wrong (it had died before, exited non-zero, or hung); a second
        call returns the first one's answer."""
        if not hasattr(self, "stop_problem"):
            self.stop_problem = self._stop()
        return self.stop_problem

    def _stop(self):
        if self.proc.poll() is not None:
            return "planktond had exited (%d) before the test stopped it" % self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "planktond did not exit within 30 s of SIGTERM (killed)"
        return None if code == 0 else "planktond exited %d after SIGTERM" % code

    def close(self, check=True):
        """Stops the daemon and removes its folder; with check, a daemon that did not exit 0
        on SIGTERM fails the test (its log is printed)."""
        problem = self.stop()
        self.log.close()
        log = open(self.log_path, errors="replace").read() if problem else ""
        shutil.rmtree(self.dir, ignore_errors=True)
        if problem and check:
            raise SystemExit("FAIL: %s; its log:\n%s" % (problem, log[-4000:]))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        # an exception already on its way wins; otherwise the daemon's exit is checked
        self.close(check=exc_type is None)


def model_classes():
    """The test model's labels, in class order (from its model.yaml)."""
    import yaml
    with open(os.path.join(env("PD_TEST_MODEL"), "model.yaml")) as f:
        return list(yaml.safe_load(f)["classes"])


def data_root():
    """$PLANKTON_DATA/train, or exit 77 (skipped) when absent."""
    root = os.path.join(os.environ.get("PLANKTON_DATA", ""), "train")
    if not os.path.isdir(root):
        print("skipped: no NDSB crops at %s (set PLANKTON_DATA)" % root)
        sys.exit(SKIP)
    return root


def make_tree(dest, classes, per_class, root=None):
    """Copies the first per_class crops of each class into dest/<class>/;
    returns the copied paths sorted as the CLI walks them."""
    root = root or data_root()
    paths = []
    for c in classes:
        src = os.path.join(root, c)
        names = sorted(n for n in os.listdir(src) if n.lower().endswith((".jpg", ".png")))
        if len(names) < per_class:
            print("skipped: %s has %d crops, need %d" % (src, len(names), per_class))
            sys.exit(SKIP)
        os.makedirs(os.path.join(dest, c), exist_ok=True)
        for n in names[:per_class]:
            shutil.copyfile(os.path.join(src, n), os.path.join(dest, c, n))
            paths.append(os.path.join(dest, c, n))
    return sorted(paths)


def engine_probs(paths, tta=0):
    """The engine's own distributions for the images (rows in path order)."""
    n_classes = len(model_classes())
    with tempfile.TemporaryDirectory(prefix="pc-cli-ref-") as tmp:
        out = os.path.join(tmp, "probs.f32")
        cmd = [env("PLANKTOND_MODEL_TOOL"), "run", env("PD_TEST_MODEL"), "--threads", "1",
               "--probs", out]
        if tta:
            cmd += ["--tta", str(tta)]
        subprocess.run(cmd + list(paths), check=True, capture_output=True, text=True)
        probs = np.fromfile(out, dtype=np.float32)
    return probs.reshape(len(paths), n_classes)
