"""plankton-client's output failures, addressing and messages, against a real
planktond (PNG crops made here: no data set needed):

- every way writing can fail: standard output on /dev/full (classify,
  evaluate, stats, models), a pipe closed early (`| head -1`: killed by
  SIGPIPE as Unix tools are, or with SIGPIPE ignored a message and exit 1,
  and the run stops instead of classifying the rest), -o in a folder that
  does not exist (exit 2) or on /dev/full, --confusion likewise (checked
  before the run): each with its exit code and one message that names what
  failed, and (with valgrind present) no memory error in any of them
  (valgrind --error-exitcode=99);
- --socket unix:PATH and tcp:HOST:PORT as PLANKTON_SOCKET takes them; the
  global options after the command; ports that are not 1..65535 are usage
  errors (exit 2);
- connection messages that say what is wrong: a folder that does not exist,
  a socket or folder closed to the user (as nobody, naming the group and the
  mode), an HTTP server where planktond was expected;
- every message on stderr starts with "plankton-client:"."""
import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_harness as h  # noqa: E402
from test_cli_errors import good_images  # noqa: E402

def _sanitized(binary):
    """An AddressSanitizer build cannot run under valgrind (the sanitizer build is checked by
    ASan itself; the release build runs the valgrind half of this test)."""
    try:
        out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    except OSError:
        return False
    return "libasan" in out


VALGRIND = shutil.which("valgrind")
if VALGRIND and _sanitized(os.environ.get("PLANKTON_CLIENT", "")):
    print("valgrind half not run: %s is an AddressSanitizer build" %
          os.environ.get("PLANKTON_CLIENT"))
    VALGRIND = None
PREFIX = "plankton-client:"


def all_prefixed(err):
    return all(line.startswith(PREFIX) for line in err.splitlines())


def run_to(args, out, socket_path, valgrind=False, preexec=None, stdin=None):
    """Runs the CLI with standard output on the file `out` (a path); returns (rc, stderr)."""
    cmd = ([VALGRIND, "-q", "--error-exitcode=99"] if valgrind else []) + [h.env("PLANKTON_CLIENT"),
                                                                        "--socket", socket_path] + args
    with open(out, "w") as fh:
        p = subprocess.run(cmd, stdout=fh, stderr=subprocess.PIPE, text=True, timeout=300,
                           preexec_fn=preexec, input=stdin)
    return p.returncode, p.stderr


def closed_pipe(args, socket_path, ignore_sigpipe, valgrind=False, stdin=""):
    """Reads one line of the CLI's standard output, closes the pipe, waits. (rc, stderr)."""
    cmd = ([VALGRIND, "-q", "--error-exitcode=99"] if valgrind else []) + [h.env("PLANKTON_CLIENT"),
                                                                        "--socket", socket_path] + args

    def pre():
        signal.signal(signal.SIGPIPE, signal.SIG_IGN if ignore_sigpipe else signal.SIG_DFL)

    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=pre)
    p.stdin.write(stdin.encode())
    p.stdin.close()
    p.stdout.readline()
    p.stdout.close()
    err = p.stderr.read().decode("utf-8", "replace")
    return p.wait(timeout=300), err


def check_output_failures(f, d, tmp, good, evtree):
    many = "".join(good[i % 2] + "\n" for i in range(400))
    for vg in ([False, True] if VALGRIND else [False]):
        tag = "valgrind: " if vg else ""
        # standard output on a full disk: one message, no garbage after it
        rc, err = run_to(["classify", "-f", "csv", good[0], good[1]], "/dev/full", d.socket, vg)
        f.check(rc == 1 and "writing standard output: No space left on device" in err and all_prefixed(err)
                and len(err.splitlines()) == 1, "%sclassify > /dev/full: %d %r" % (tag, rc, err))
        # ... and the run stops there instead of classifying 400 crops into it
        rc, err = run_to(["classify", "-j", "4", "-"], "/dev/full", d.socket, vg, stdin=many)
        answered = [int(w) for w in err.split() if w.isdigit()]
        f.check(rc == 1 and "No space left on device" in err and answered and answered[0] < 400
                and all_prefixed(err), "%sclassify - > /dev/full stops early: %d %r" % (tag, rc, err))
        for args, what in ((["evaluate", evtree], "evaluate"), (["stats"], "stats"), (["models"], "models")):
            rc, err = run_to(args, "/dev/full", d.socket, vg)
            f.check(rc == 1 and "writing standard output: No space left on device" in err and all_prefixed(err),
                    "%s%s > /dev/full: %d %r" % (tag, what, rc, err))
        # a pipe closed after one line: SIGPIPE as for any Unix tool, no message
        rc, err = closed_pipe(["classify", "-j", "4", "-"], d.socket, False, vg, stdin=many)
        f.check(rc == -signal.SIGPIPE and err == "", "%sclassify | head -1: killed by SIGPIPE: %d %r"
                % (tag, rc, err))
        # with SIGPIPE ignored (as some callers start us): EPIPE, one message, exit 1, stops early
        rc, err = closed_pipe(["classify", "-j", "4", "-"], d.socket, True, vg, stdin=many)
        answered = [int(w) for w in err.split() if w.isdigit()]
        f.check(rc == 1 and "writing standard output: Broken pipe" in err and answered and answered[0] < 400
                and all_prefixed(err), "%sclassify | head -1, SIGPIPE ignored: %d %r" % (tag, rc, err))
        # -o that cannot be made, -o on a full disk
        bad = os.path.join(tmp, "no-such-folder", "out.csv")
        r = h.run_cli(["classify", "-f", "csv", "-o", bad, good[0]], socket=d.socket,
                      prefix=[VALGRIND, "-q", "--error-exitcode=99"] if vg else [])
        f.check(r.rc == 2 and "--output %s: No such file or directory" % bad in r.err and all_prefixed(r.err),
                "%s-o in a missing folder: %r" % (tag, r))
        r = h.run_cli(["classify", "-f", "csv", "-o", "/dev/full", good[0]], socket=d.socket,
                      prefix=[VALGRIND, "-q", "--error-exitcode=99"] if vg else [])
        f.check(r.rc == 1 and "writing /dev/full: No space left on device" in r.err and all_prefixed(r.err),
                "%s-o /dev/full: %r" % (tag, r))
        # --confusion: a missing folder is refused before anything is sent; a full disk after
        r = h.run_cli(["evaluate", "--confusion", bad, evtree], socket=d.socket,
                      prefix=[VALGRIND, "-q", "--error-exitcode=99"] if vg else [])
        f.check(r.rc == 2 and "--confusion %s: No such file or directory" % bad in r.err and r.out == ""
                and all_prefixed(r.err), "%s--confusion in a missing folder: %r" % (tag, r))
        r = h.run_cli(["evaluate", "--confusion", "/dev/full", evtree], socket=d.socket,
                      prefix=[VALGRIND, "-q", "--error-exitcode=99"] if vg else [])
        f.check(r.rc == 1 and "writing --confusion /dev/full: No space left on device" in r.err
                and "accuracy" in r.out and all_prefixed(r.err), "%s--confusion /dev/full: %r" % (tag, r))


class HTTPOnly(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):
        self.send_response(200)
        self.end_headers()

    do_GET = do_HEAD

    def log_message(self, *args):
        pass


def check_addresses(f, d, tmp, good):
    r = h.run_cli(["--socket", "unix:" + d.socket, "health"])
    f.check(r.rc == 0 and r.out.strip() == "serving", "--socket unix:PATH: %r" % r)
    r = h.run_cli(["health", "--socket", d.socket])
    f.check(r.rc == 0, "health --socket PATH (after the command): %r" % r)
    r = h.run_cli(["classify", "-f", "csv", good[0], "--socket=" + d.socket, "--timeout", "30"])
    f.check(r.rc == 0 and r.out.startswith("path,label,probability\n" + good[0]),
            "classify ... --socket=PATH --timeout 30 (after the command): %r" % r)
    r = h.run_cli(["classify", "--", "--socket"], socket=d.socket)
    f.check(r.rc == 1 and "--socket: No such file or directory" in r.err,
            "after --, --socket is a path: %r" % r)
    r = h.run_cli(["classify", good[0], "--socket"])
    f.check(r.rc == 2 and "option '--socket' needs a value" in r.err and all_prefixed(r.err),
            "--socket without a value: %r" % r)
    for args, env in ((["--tcp", "127.0.0.1:99999", "health"], None), (["--tcp", "127.0.0.1:http", "stats"], None),
                      (["--tcp", "127.0.0.1:", "stats"], None), (["--socket", "tcp:localhost:0", "stats"], None),
                      (["stats"], {"PLANKTON_SOCKET": "tcp:localhost:70000"})):
        r = h.run_cli(args, env_extra=env)
        f.check(r.rc == 2 and "port" in r.err and all_prefixed(r.err), "bad port %r %r: exit 2: %r" % (args, env, r))
    # a socket whose folder does not exist
    gone = os.path.join(tmp, "no-such-run-dir", "planktond.sock")
    r = h.run_cli(["stats"], socket=gone)
    f.check(r.rc == 3 and "folder %s does not exist" % os.path.dirname(gone) in r.err and all_prefixed(r.err),
            "missing socket folder: %r" % r)
    # an HTTP server where planktond's native port was expected
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HTTPOnly)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        port = srv.server_address[1]
        for args in (["stats"], ["models"], ["classify", good[0]]):
            r = h.run_cli(["--tcp", "127.0.0.1:%d" % port, "--timeout", "5"] + args)
            f.check(r.rc == 3 and "looks like an HTTP server" in r.err and all_prefixed(r.err),
                    "%s on an HTTP port: %r" % (args[0], r))
    finally:
        srv.shutdown()
        srv.server_close()
    # a port where nothing listens: the library's message, not an HTTP claim
    r = h.run_cli(["--tcp", "127.0.0.1:%d" % h.free_port(), "stats"])
    f.check(r.rc == 3 and "HTTP" not in r.err and "refused" in r.err, "closed port: %r" % r)


def check_permissions(f, d, good):
    """As nobody: the socket's folder closed, then the socket itself (naming its group)."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        f.check(os.geteuid() != 0, "permission messages need root and setpriv here")
        return
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    os.chmod(d.dir, 0o700)
    r = h.run_cli(["stats"], socket=d.socket, prefix=nobody)
    f.check(r.rc == 3 and "permission denied: its folder %s belongs to group root (mode 0700)" % d.dir in r.err
            and all_prefixed(r.err), "folder closed to nobody: %r" % r)
    os.chmod(d.dir, 0o755)
    import grp
    gid = grp.getgrnam("daemon").gr_gid if "daemon" in [g.gr_name for g in grp.getgrall()] else 1
    name = grp.getgrgid(gid).gr_name
    os.chown(d.socket, 0, gid)
    os.chmod(d.socket, 0o660)
    r = h.run_cli(["stats"], socket=d.socket, prefix=nobody)
    f.check(r.rc == 3 and "permission denied: %s belongs to group %s (mode 0660)" % (d.socket, name) in r.err
            and "usermod -aG %s" % name in r.err and all_prefixed(r.err), "socket closed to nobody: %r" % r)
    os.chmod(d.socket, 0o666)
    r = h.run_cli(["health"], socket=d.socket, prefix=nobody)
    f.check(r.rc == 0, "socket open to nobody again: %r" % r)


def check_prefix(f):
    """Usage errors of every kind: each line on stderr starts with plankton-client:."""
    cases = [[], ["frobnicate"], ["--bogus"], ["--timeout"], ["classify"], ["classify", "--bogus", "x"],
             ["classify", "-j"], ["classify", "-Z", "x"], ["classify", "--model"], ["evaluate"],
             ["evaluate", "--bogus", "d"], ["stats", "--bogus"], ["stats", "x"], ["models", "--bogus"],
             ["models", "a", "b"], ["health", "--bogus"], ["health", "-w"], ["classify", "--metadata", "m.tsv", "x"], ["help", "nope"],
             ["classify", "-f", "ecotaxa", "-o", "out.tsv", "x"]]
    for args in cases:
        r = h.run_cli(args)
        f.check(r.rc == 2 and r.err and all_prefixed(r.err), "usage %r: exit 2, prefixed: %r" % (args, r))
    r = h.run_cli(["classify", "-j"])
    f.check("option '-j' needs a value" in r.err, "missing value named: %r" % r.err)
    r = h.run_cli(["classify", "-Z", "x"])
    f.check("classify: unknown option '-Z'" in r.err, "unknown short option named: %r" % r.err)


def main():
    f = h.Failures("cli_output")
    labels = h.model_classes()
    tmp = tempfile.mkdtemp(prefix="pc-cli-output-")
    try:
        good = good_images(tmp)
        evtree = os.path.join(tmp, "labelled")
        os.makedirs(os.path.join(evtree, labels[0]))
        shutil.copyfile(good[0], os.path.join(evtree, labels[0], "a.png"))
        with h.Daemon() as d:
            check_output_failures(f, d, tmp, good, evtree)
            check_addresses(f, d, tmp, good)
            check_permissions(f, d, good)
        check_prefix(f)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    f.finish()


if __name__ == "__main__":
    main()
