"""Triton's perf_analyzer against planktond's KServe front ends: finding the
binary (the one tritonclient 2.48.0's wheel carries, in the venv
scripts/kserve-venv makes), its input file of crops, one run and its
figures. Used by bench/kserve/bench_kserve.py (--perf-analyzer) and
tests/kserve/test_kserve_perf_analyzer.py.

The input: BYTES [N, 1] of encoded crops (the dims ModelConfig gives,
IMAGE [1] with max_batch_size), perf_analyzer's JSON with each element's
raw tensor content in "b64": the 4-byte little-endian length, then the
bytes, as the protocol's raw_input_contents holds a BYTES element.
"""
import base64
import csv
import json
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Unavailable(Exception):
    """perf_analyzer cannot run here; the message says exactly why."""


def find(venv_dir=None):
    """(binary, environment) to run perf_analyzer with; Unavailable with the
    reason where the venv cannot be made or the binary does not start."""
    cmd = [os.path.join(ROOT, "scripts", "kserve-venv"), "--perf-analyzer"] + ([venv_dir] if venv_dir else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or len(lines) < 2:
        err = r.stderr.strip().splitlines()
        raise Unavailable("scripts/kserve-venv --perf-analyzer failed: " + (err[-1] if err else "exit %d" % r.returncode))
    binary, libdir = lines[-2], lines[-1]
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = libdir + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    if not os.access(binary, os.X_OK):
        raise Unavailable("%s is not there or not executable" % binary)
    v = subprocess.run([binary, "--version"], capture_output=True, text=True, env=env)
    out = (v.stdout + v.stderr).strip()
    if v.returncode == 127 or "error while loading shared libraries" in out or "GLIBC" in out:
        raise Unavailable("%s does not start: %s" % (binary, out.splitlines()[-1] if out else "exit 127"))
    return binary, env


def write_input(path, blobs):
    """perf_analyzer's --input-data JSON: one entry per crop, IMAGE [1]."""
    data = [{"IMAGE": {"content": {"b64": base64.b64encode(len(b).to_bytes(4, "little") + b).decode()},
                       "shape": [1]}} for b in blobs]
    with open(path, "w") as f:
        json.dump({"data": data}, f)
    return path


def run(binary, env, model, protocol, url, input_path, concurrency="1:8:7", batch=1, interval_ms=1000,
        csv_path=None, timeout=300):
    """One perf_analyzer run (protocol "grpc" or "http"). Stability is
    hardly asked for (--stability-percentage 999: three windows within 10x
    of each other; a shared machine seldom gives three within perf_analyzer's
    default 10%, and then it gives up); each concurrency is measured for up
    to 10 windows. Returns {"rc", "output", "rows": [{concurrency, throughput,
    p50_us, p99_us, ...}], "client_requests", "server_inferences"}."""
    csv_path = csv_path or input_path + "." + protocol + ".csv"
    cmd = [binary, "-m", model, "-i", protocol, "-u", url, "--input-data", input_path,
           "--concurrency-range", concurrency, "-b", str(batch), "--measurement-interval", str(interval_ms),
           "--stability-percentage", "999", "--max-trials", "10", "-f", csv_path]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        rc, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = 124, (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
    rows = []
    if os.path.exists(csv_path):
        with open(csv_path) as f:
            for r in csv.DictReader(f):
                rows.append({"concurrency": int(r["Concurrency"]), "throughput": float(r["Inferences/Second"]),
                             "p50_us": float(r["p50 latency"]), "p99_us": float(r["p99 latency"]),
                             "queue_us": float(r["Server Queue"]), "compute_us": float(r["Server Compute Infer"])})
    rows.sort(key=lambda x: x["concurrency"])  # the CSV is sorted by throughput
    return {"rc": rc, "output": out, "cmd": cmd, "rows": rows,
            "client_requests": [int(x) for x in re.findall(r"Client:\s*\n\s*Request count: (\d+)", out)],
            "server_inferences": [int(x) for x in re.findall(r"Server:\s*\n\s*Inference count: (\d+)", out)]}


def summary(protocol, r, batch=1):
    """One line per concurrency level."""
    return ["perf_analyzer %-4s batch %d concurrency %d: %.1f infer/s, p50 %.2f ms, p99 %.2f ms "
            "(server queue %.2f ms, compute %.2f ms)" %
            (protocol, batch, x["concurrency"], x["throughput"], x["p50_us"] / 1000, x["p99_us"] / 1000,
             x["queue_us"] / 1000, x["compute_us"] / 1000) for x in r["rows"]]
