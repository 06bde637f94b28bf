#!/usr/bin/env python3
"""The installed tree works as installed: `meson install --destdir` into a temporary folder,
then every path that a unit, the example config or the binary names must exist there.

  test_install.py BUILD_DIR

- planktond.service: ExecStart's binary and its --config file, ExecReload's binary
  (plankton-client), the units named by Requires=,
  After=, Also= and the sockets' Service=;
- planktond.socket's SocketGroup= is created by the installed sysusers.d file;
- the installed example config passes the installed planktond's --check-config, and its
  model.dir is the installed model folder (model.yaml + weights.safetensors);
- the installed planktond's compiled-in default model (`--print-config` without a file) is
  that same installed folder.
Paths are looked up under DESTDIR (an absolute path P is DESTDIR/P). The installed binary runs
with its model paths seen through DESTDIR: the test rewrites the installed prefix in a copy of
the config only for --check-config. Exits 1 on failure.
"""
import os
import re
import subprocess
import sys
import tempfile


def under(destdir, path):
    return os.path.join(destdir, path.lstrip("/"))


def unit_values(text, key):
    out = []
    for line in text.splitlines():
        if line.startswith(key + "="):
            out.extend(line.split("=", 1)[1].split())
    return out


def main():
    build = sys.argv[1]
    failures = []
    with tempfile.TemporaryDirectory(prefix="pd-install-") as dest:
        p = subprocess.run(["meson", "install", "-C", build, "--destdir", dest, "--no-rebuild",
                            "--quiet"], capture_output=True, text=True)
        if p.returncode != 0:
            print("FAIL: meson install: %s" % (p.stdout + p.stderr)[-2000:])
            return 1
        units = {}
        for root, _, files in os.walk(dest):
            for f in files:
                if f.endswith((".service", ".socket")) and "systemd" in root:
                    units[f] = os.path.join(root, f)
        for want in ("planktond.service", "planktond.socket", "planktond-metrics.socket"):
            if want not in units:
                failures.append("%s is not installed (units found: %s)" % (want, sorted(units)))
        if failures:
            print("\n".join("FAIL: " + f for f in failures))
            return 1
        service = open(units["planktond.service"]).read()
        exec_start = unit_values(service, "ExecStart")
        binary = exec_start[0]
        print("ExecStart: %s" % " ".join(exec_start))
        if not os.access(under(dest, binary), os.X_OK):
            failures.append("ExecStart binary %s is not installed" % binary)
        exec_reload = unit_values(service, "ExecReload")
        print("ExecReload: %s" % " ".join(exec_reload))
        reloader = exec_reload[0].lstrip("+") if exec_reload else ""
        if not reloader or not os.access(under(dest, reloader), os.X_OK):
            failures.append("ExecReload binary %s is not installed" % reloader)
        config = exec_start[exec_start.index("--config") + 1] if "--config" in exec_start else None
        if not config or not os.path.isfile(under(dest, config)):
            failures.append("ExecStart's --config %s is not installed" % config)
        for key in ("Requires", "After", "Also"):
            for name in unit_values(service, key):
                if name.startswith("planktond") and name not in units:
                    failures.append("planktond.service %s=%s is not installed" % (key, name))
        for sock in ("planktond.socket", "planktond-metrics.socket"):
            for name in unit_values(open(units[sock]).read(), "Service"):
                if name not in units:
                    failures.append("%s Service=%s is not installed" % (sock, name))

        # the socket's group comes from the installed sysusers.d entry
        groups = unit_values(open(units["planktond.socket"]).read(), "SocketGroup")
        sysusers = [os.path.join(r, f) for r, _, fs in os.walk(dest) for f in fs
                    if "sysusers.d" in r]
        declared = set()
        for f in sysusers:
            for line in open(f):
                parts = line.split()
                if len(parts) >= 2 and parts[0] in ("g", "u"):
                    declared.add(parts[1])
        print("SocketGroup: %s; sysusers.d groups: %s (%s)" % (
            groups, sorted(declared), ", ".join(os.path.relpath(f, dest) for f in sysusers)))
        for g in groups:
            if g not in declared:
                failures.append("SocketGroup=%s is created by no installed sysusers.d file" % g)

        # the example config: its model is the installed one, and it checks
        if config and os.path.isfile(under(dest, config)):
            text = open(under(dest, config)).read()
            m = re.search(r"^\s*dir:\s*(\S+)", text, re.M)
            model = m.group(1) if m else None
            print("config model.dir: %s" % model)
            if not model or not os.path.isfile(os.path.join(under(dest, model), "model.yaml")) \
                    or not os.path.isfile(os.path.join(under(dest, model),
                                                       "weights.safetensors")):
                failures.append("the installed config's model.dir %s is not an installed model "
                                "folder" % model)
            else:
                seen = os.path.join(dest, "check.yaml")
                with open(seen, "w") as f:
                    f.write(text.replace(model, under(dest, model)))
                # (--check-config also checks the socket's folder on this machine:
                # one in the test's folder, whoever runs it)
                p = subprocess.run([under(dest, binary), "--check-config", seen, "--socket",
                                    os.path.join(dest, "run", "planktond.sock")],
                                   capture_output=True, text=True)
                print("installed --check-config: exit %d %s" % (p.returncode,
                                                                (p.stdout + p.stderr).strip()))
                if p.returncode != 0:
                    failures.append("installed planktond --check-config of the installed "
                                    "example: %s" % p.stderr.strip())
            p = subprocess.run([under(dest, binary), "--print-config"], capture_output=True,
                               text=True)
            m2 = re.search(r"^\s*dir:\s*(\S+)", p.stdout, re.M)
            default_model = m2.group(1).strip("'\"") if m2 else None
            print("installed planktond's default model: %s" % default_model)
            if default_model != model:
                failures.append("the installed planktond's default model %s is not the "
                                "installed config's %s" % (default_model, model))
    for f in failures:
        print("FAIL:", f)
    if not failures:
        print("OK: every path the installed units and config name is installed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
