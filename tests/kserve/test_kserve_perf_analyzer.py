#!/usr/bin/env python3
"""test_kserve_perf_analyzer: Triton's perf_analyzer (the binary
tritonclient 2.48.0's wheel carries, with nvidia-cuda-runtime-cu12's
libcudart, from scripts/kserve-venv) against the real planktond over gRPC
and over HTTP, with real NDSB crops as its input data: concurrency 1 and 8
at batch 1 on both, and batch 4 ([4, 1] BYTES) at concurrency 2 over gRPC.
Each run must exit 0 without an error line, with a throughput above zero at
every concurrency it measured, and what its client counted must have
reached the daemon (/metrics' OK requests grew by at least the requests
perf_analyzer reports, times the batch). perf_analyzer also reads
ModelConfig (the input's dims and the batch size) and ModelStatistics
(whose compute counts it checks are equal) itself.

Where perf_analyzer cannot run (the venv cannot be made, or the binary does
not start: a missing library, an old glibc) the test is skipped with that
exact reason.

env: as kserve_harness.
"""
import os
import re
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench", "kserve"))
from kserve_harness import MODEL, Daemon, check, finish, free_port, need_env, real_crops, skip  # noqa: E402
import perf_analyzer_run as pa  # noqa: E402


def ok_requests(d):
    m = re.search(r"^planktond_inference_request_success_total (\S+)$", d.metrics(), re.M)
    return int(float(m.group(1))) if m else 0


def main():
    need_env()
    try:
        binary, env = pa.find()
    except pa.Unavailable as e:
        skip("perf_analyzer cannot run here: %s" % e)
    tmp = tempfile.mkdtemp(prefix="pd-kserve-pa-")
    inp = pa.write_input(os.path.join(tmp, "crops.json"), [b for _, b in real_crops(8, step=1201)])
    gaddr, haddr = "127.0.0.1:%d" % free_port(), "127.0.0.1:%d" % free_port()
    d = Daemon(tmp, gaddr, haddr)
    try:
        for protocol, url, batch, conc in (("grpc", gaddr, 1, "1:8:7"), ("http", haddr, 1, "1:8:7"),
                                           ("grpc", gaddr, 4, "2")):
            tag = "%s batch %d" % (protocol, batch)
            before = ok_requests(d)
            # 300 ms windows: this checks what perf_analyzer and the daemon
            # count, not the figures (bench/kserve measures with 1 s ones)
            r = pa.run(binary, env, MODEL, protocol, url, inp, concurrency=conc, batch=batch,
                       interval_ms=300, csv_path=os.path.join(tmp, "%s-%d.csv" % (protocol, batch)))
            after = ok_requests(d)
            for line in pa.summary(protocol, r, batch):
                print(line)
            bad = [ln for ln in r["output"].splitlines() if re.search(r"(?i)error|failed|terminate", ln)]
            check(r["rc"] == 0, "%s: perf_analyzer exit %d: %s" % (tag, r["rc"], r["output"][-800:]))
            check(not bad, "%s: perf_analyzer reported %r" % (tag, bad[:3]))
            parts = [int(x) for x in conc.split(":")]  # START[:END[:STEP]]
            want = list(range(parts[0], (parts + parts)[1] + 1, parts[2] if len(parts) > 2 else 1))
            got = [x["concurrency"] for x in r["rows"]]
            check(got == want, "%s: measured concurrencies %r, want %r" % (tag, got, want))
            check(all(x["throughput"] > 0 for x in r["rows"]) and r["rows"],
                  "%s: throughputs %r" % (tag, [x["throughput"] for x in r["rows"]]))
            sent = sum(r["client_requests"]) * batch
            check(r["client_requests"] and after - before >= sent,
                  "%s: the daemon answered %d OK crops, perf_analyzer counted %d" % (tag, after - before, sent))
            check(len(r["server_inferences"]) == len(r["rows"]),
                  "%s: server-side statistics for %d of %d levels" % (tag, len(r["server_inferences"]),
                                                                     len(r["rows"])))
        check(d.stop() == 0, "planktond exit 0")
    finally:
        if d.p.poll() is None:
            d.stop()
    print("files in", tmp)
    finish("kserve_perf_analyzer")


if __name__ == "__main__":
    main()
