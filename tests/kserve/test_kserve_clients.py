#!/usr/bin/env python3
"""KServe v2 front ends against clients nobody here wrote: Triton's
tritonclient (gRPC; its generated service_pb2 for the fields it has no
helper for) talking to the real planktond serving the shipped ndsb-seed
model, over TCP and over a Unix socket. Every probability is compared with
the native protocol's answer for the same crop (plankton-client classify
--probs), to 1e-6; the classification strings with Triton's format of the
native top-k; the errors with their gRPC status codes and messages; a
stream with a bad crop in the middle; ModelStatistics with /metrics; and a
SIGTERM with calls in flight (every accepted call answered, then exit 0).

Needs the venv of scripts/kserve-venv (made on demand) and the NDSB crops
($PLANKTON_DATA); exits 77 (skipped) with the reason where either is
missing.

env: PLANKTOND, PLANKTON_CLIENT, PLANKTON_DATA, PLANKTON_SOURCE_ROOT,
     KSERVE_PYTHON (a python with tritonclient; default: scripts/kserve-venv)
"""
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kserve_harness import (  # noqa: E402 (re-executes under the venv's python where needed)
    CHECKS, FAILS, MODEL, Daemon, Image, as_vector, batch_hist, bytes_input, channel, check,
    free_port, grpc, infer_request_bytes, native, need_env, np, pb, real_crops, tg, th)


def model_default_tta():
    """tta.count of the served model.yaml (0 and 1 both mean one view)."""
    import yaml
    with open(os.path.join(os.environ.get("PD_KSERVE_MODEL", ""), "model.yaml")) as fh:
        count = (yaml.safe_load(fh).get("tta") or {}).get("count", 0)
    return max(1, int(count))


DEFAULT_TTA = model_default_tta()


def status_of(e):
    return e.status() if hasattr(e, "status") else None


def expect_error(fn, status, needle, what):
    try:
        fn()
    except tg.InferenceServerException as e:
        if status is not None:
            check(status_of(e) == status, "%s: status %s, want %s (%s)" % (what, status_of(e), status, e.message()))
        check(needle in (e.message() or ""), "%s: message %r lacks %r" % (what, e.message(), needle))
        return e
    check(False, "%s: no error" % what)


def run_suite(addr, daemon, crops, pngs, labels, unix):
    tag = "unix" if unix else "tcp"
    c = tg.InferenceServerClient(addr)
    # health and metadata
    check(c.is_server_live(), tag + ": live")
    check(c.is_server_ready(), tag + ": ready")
    check(c.is_model_ready(MODEL), tag + ": model ready")
    check(not c.is_model_ready("no-such-model"), tag + ": unknown model not ready")
    md = c.get_server_metadata(as_json=True)
    check(md["name"] == "planktond", tag + ": server name")
    for ext in ("classification", "model_configuration", "statistics"):
        check(ext in md.get("extensions", []), tag + ": extension " + ext)
    mm = c.get_model_metadata(MODEL, as_json=True)
    check(mm["inputs"][0]["name"] == "IMAGE" and mm["inputs"][0]["datatype"] == "BYTES", tag + ": input metadata")
    check(mm["outputs"][0]["name"] == "PROBABILITIES" and mm["outputs"][0]["shape"] == ["-1", str(len(labels))],
          tag + ": output metadata %r" % mm["outputs"])
    cfg = c.get_model_config(MODEL, as_json=True)["config"]
    check(int(cfg["max_batch_size"]) == 64, tag + ": max_batch_size %r" % cfg.get("max_batch_size"))
    check("dynamic_batching" in cfg, tag + ": dynamic_batching")
    check(cfg["input"][0]["data_type"] == "TYPE_STRING" and cfg["output"][0]["data_type"] == "TYPE_FP32",
          tag + ": config tensors")
    # grpc.health.v1 (bytes by hand: HealthCheckRequest{} is empty; SERVING is field 1 = 1)
    ch = grpc.insecure_channel(addr)
    hc = ch.unary_unary("/grpc.health.v1.Health/Check")
    check(hc(b"", timeout=10) == b"\x08\x01", tag + ": Health/Check SERVING")
    try:
        hc(b"\x0a\x03foo", timeout=10)
        check(False, tag + ": Health/Check of an unknown service")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.NOT_FOUND, tag + ": unknown service NOT_FOUND")
    ch.close()

    # the native answers for the same files, TTA 1 and the model's default
    paths = [p for p, _ in crops]
    ref1 = native(daemon, paths + [p for p, _ in pngs], 1)

    # JPEG BYTES [N] in raw_input_contents (tritonclient's way), tta 1
    r = c.infer(MODEL, [bytes_input([b for _, b in crops])], parameters={"tta": 1})
    got = r.as_numpy("PROBABILITIES")
    check(got.shape == (len(crops), len(labels)), tag + ": shape %r" % (got.shape,))
    worst = max(float(np.max(np.abs(got[i] - as_vector(ref1[p], labels)))) for i, (p, _) in enumerate(crops))
    check(worst <= 1e-6, tag + ": JPEG BYTES vs native: max diff %g" % worst)
    print("%s: JPEG BYTES [%d]: max |diff| vs native %.3g" % (tag, len(crops), worst))

    # the views each answer reports (response parameter tta): as asked, or the model's default
    views = r.get_response().parameters["tta"].int64_param
    check(views == 1, tag + ": answer reports tta %r for tta 1" % views)
    r3 = c.infer(MODEL, [bytes_input([crops[0][1]])], parameters={"tta": 3})
    views = r3.get_response().parameters["tta"].int64_param
    check(views == 3, tag + ": answer reports tta %r for tta 3" % views)
    r0 = c.infer(MODEL, [bytes_input([crops[0][1]])])
    views = r0.get_response().parameters["tta"].int64_param
    check(views == DEFAULT_TTA, tag + ": answer without tta reports %r, the model's default %d"
          % (views, DEFAULT_TTA))

    # PNG BYTES [N,1]
    r = c.infer(MODEL, [bytes_input([b for _, b in pngs], [len(pngs), 1])], parameters={"tta": 1})
    got = r.as_numpy("PROBABILITIES")
    worst = max(float(np.max(np.abs(got[i] - as_vector(ref1[p], labels)))) for i, (p, _) in enumerate(pngs))
    check(worst <= 1e-6, tag + ": PNG BYTES [N,1] vs native: max diff %g" % worst)

    # UINT8 pixels [1,H,W] and [2,H,W,1], same pixels as the PNGs
    for p, b in pngs[:2]:
        px = np.array(Image.open(io.BytesIO(b)).convert("L"), dtype=np.uint8)
        inp = tg.InferInput("IMAGE", [1, px.shape[0], px.shape[1]], "UINT8")
        inp.set_data_from_numpy(px[None])
        got = c.infer(MODEL, [inp], parameters={"tta": 1}).as_numpy("PROBABILITIES")
        d = float(np.max(np.abs(got[0] - as_vector(ref1[p], labels))))
        check(d <= 1e-6, tag + ": UINT8 [1,H,W] vs native PNG: diff %g" % d)
        two = np.stack([px, px])[..., None]
        inp = tg.InferInput("IMAGE", list(two.shape), "UINT8")
        inp.set_data_from_numpy(two)
        got = c.infer(MODEL, [inp], parameters={"tta": 1}).as_numpy("PROBABILITIES")
        d = float(np.max(np.abs(got - as_vector(ref1[p], labels)[None])))
        check(d <= 1e-6, tag + ": UINT8 [2,H,W,1] vs native PNG: diff %g" % d)

    # BYTES in contents.bytes_contents (the generated stubs, no helper)
    stub = pb  # the upstream-generated messages
    req = stub.ModelInferRequest(model_name=MODEL)
    t = req.inputs.add(name="IMAGE", datatype="BYTES", shape=[2])
    t.contents.bytes_contents.extend([crops[0][1], crops[1][1]])
    req.parameters["tta"].int64_param = 1
    ch = grpc.insecure_channel(addr)
    call = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                          request_serializer=stub.ModelInferRequest.SerializeToString,
                          response_deserializer=stub.ModelInferResponse.FromString)
    resp = call(req, timeout=60)
    arr = np.frombuffer(resp.raw_output_contents[0], dtype=np.float32).reshape(2, len(labels))
    d = max(float(np.max(np.abs(arr[i] - as_vector(ref1[crops[i][0]], labels)))) for i in range(2))
    check(d <= 1e-6, tag + ": bytes_contents vs native: diff %g" % d)
    check(resp.model_name == MODEL and resp.outputs[0].datatype == "FP32", tag + ": response fields")
    ch.close()

    # the classification extension: Triton's strings of the native top 3
    out = tg.InferRequestedOutput("PROBABILITIES", class_count=3)
    r = c.infer(MODEL, [bytes_input([b for _, b in crops[:3]])], outputs=[out], parameters={"tta": 1})
    cls = r.as_numpy("PROBABILITIES")
    check(cls.shape == (3, 3), tag + ": classification shape %r" % (cls.shape,))
    for i, (p, _) in enumerate(crops[:3]):
        v = as_vector(ref1[p], labels)
        top = sorted(range(len(labels)), key=lambda k: (-v[k], k))[:3]
        for j, k in enumerate(top):
            s = cls[i][j].decode()
            m = re.fullmatch(r"(\d+\.\d{6}):(\d+):(.+)", s)
            check(m is not None, tag + ": classification string %r" % s)
            if m:
                check(int(m.group(2)) == k and m.group(3) == labels[k], tag + ": class %r, want %d:%s" % (s, k, labels[k]))
                check(abs(float(m.group(1)) - v[k]) <= 1e-6, tag + ": class probability %r vs %g" % (s, v[k]))

    # errors, with their gRPC codes
    good = bytes_input([b for _, b in crops[:3]])
    expect_error(lambda: c.infer("no-such-model", [good]), "StatusCode.NOT_FOUND", "unknown model", tag + ": unknown model")
    expect_error(lambda: c.infer(MODEL, [bytes_input([crops[0][1], b"not an image at all", crops[1][1]])]),
                 "StatusCode.INVALID_ARGUMENT", "element 1", tag + ": bad crop in the middle")
    expect_error(lambda: c.infer(MODEL, [good], outputs=[tg.InferRequestedOutput("LOGITS")]),
                 "StatusCode.INVALID_ARGUMENT", "unknown output \"LOGITS\"", tag + ": unknown output")
    fp = tg.InferInput("IMAGE", [1, 4], "FP32")
    fp.set_data_from_numpy(np.zeros((1, 4), dtype=np.float32))
    expect_error(lambda: c.infer(MODEL, [fp]), "StatusCode.INVALID_ARGUMENT", "FP32", tag + ": FP32 input")
    expect_error(lambda: c.infer(MODEL, [bytes_input([crops[0][1]] * 65)]), "StatusCode.INVALID_ARGUMENT",
                 "batch size 65", tag + ": more crops than max_batch")
    expect_error(lambda: c.infer(MODEL, [good], parameters={"timeout": 1}), "StatusCode.DEADLINE_EXCEEDED",
                 "", tag + ": timeout parameter of 1 us")
    # the daemon still serves after all of that
    r = c.infer(MODEL, [good], parameters={"tta": 1})
    check(r.as_numpy("PROBABILITIES").shape[0] == 3, tag + ": serving after the errors")

    # a stream with a bad crop in the middle: that request's error, the
    # others answered, in order, and the stream lives on
    results = []
    done = threading.Event()

    def cb(result, error):
        results.append((result, error))
        if len(results) == 3:
            done.set()

    c.start_stream(callback=cb)
    for i, blob in enumerate([crops[0][1], b"garbage", crops[1][1]]):
        c.async_stream_infer(MODEL, [bytes_input([blob])], request_id=str(i), parameters={"tta": 1})
    done.wait(60)
    c.stop_stream()
    check(len(results) == 3, tag + ": stream answered %d of 3" % len(results))
    if len(results) == 3:
        # answers come in the order they are ready: match them by id
        good = {r.get_response().id: r for r, e in results if e is None}
        bad = [e for r, e in results if e is not None]
        check(sorted(good) == ["0", "2"], tag + ": stream answered ids %r" % sorted(good))
        check(len(bad) == 1 and "element 0" in str(bad[0]) and "INVALID_ARGUMENT" in str(bad[0]),
              tag + ": stream error %r" % [str(e) for e in bad])
        if "2" in good:
            v = good["2"].as_numpy("PROBABILITIES")[0]
            d = float(np.max(np.abs(v - as_vector(ref1[crops[1][0]], labels))))
            check(d <= 1e-6, tag + ": stream answer vs native: diff %g" % d)

    # statistics: the same counts as /metrics
    st = c.get_inference_statistics(MODEL, as_json=True)["model_stats"][0]
    m = daemon.metrics()
    ok = sum(float(x) for x in re.findall(r'^planktond_inference_request_success_total (\S+)$', m, re.M))
    check(int(st.get("inference_count", 0)) == int(ok), tag + ": inference_count %s vs /metrics OK %s" % (st.get("inference_count"), ok))
    # crops: one per OK request element, from the KServe front ends as from the native one
    crops = re.findall(r"^planktond_inference_crops_total (\S+)$", m, re.M)
    check(bool(crops) and int(float(crops[0])) == int(ok),
          tag + ": /metrics crops %s vs OK requests %s" % (crops, ok))
    batches = re.findall(r"^planktond_inference_exec_count_total (\S+)$", m, re.M)
    if batches:
        check(int(st.get("execution_count", 0)) == int(float(batches[0])), tag + ": execution_count vs /metrics")
    check(bool(batches), tag + ": /metrics has planktond_inference_exec_count_total")
    c.close()
    return ref1


def http_raw(addr, request, timeout=60):
    """One raw HTTP/1.1 exchange (TCP "HOST:PORT" or "unix:PATH"): status,
    headers (lower-case names), body."""
    if addr.startswith("unix:"):
        sk = socket.socket(socket.AF_UNIX)
        sk.settimeout(timeout)
        sk.connect(addr[5:])
    else:
        host, port = addr.rsplit(":", 1)
        sk = socket.create_connection((host, int(port)), timeout=timeout)
    try:
        sk.sendall(request)
    except OSError:
        pass  # the server may answer (413) and close before it has read it all
    data = b""
    while True:
        try:
            b = sk.recv(1 << 20)
        except (socket.timeout, OSError):
            break
        if not b:
            break
        data += b
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            m = re.search(rb"(?i)content-length:\s*(\d+)", head)
            if m and len(rest) >= int(m.group(1)):
                break
    sk.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


def post(addr, path, body, extra=b"", close=True):
    req = (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: " +
           str(len(body)).encode() + b"\r\n" + extra + (b"Connection: close\r\n" if close else b"") + b"\r\n" + body)
    return http_raw(addr, req)


def get(addr, path):
    return http_raw(addr, b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")


def binary_infer_body(blobs, outputs=None, params=None):
    """Triton's binary tensor extension: JSON, then the BYTES elements
    (4-byte little-endian length + bytes)."""
    raw = b"".join(len(b).to_bytes(4, "little") + b for b in blobs)
    hdr = {"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [len(blobs)],
                       "parameters": {"binary_data_size": len(raw)}}]}
    if outputs is not None:
        hdr["outputs"] = outputs
    if params:
        hdr["parameters"] = params
    j = json.dumps(hdr).encode()
    return j, raw


def rest_suite(addr, daemon, crops, pngs, labels, ref1, unix):
    tag = "rest-unix" if unix else "rest-tcp"
    base = "/v2/models/" + MODEL
    st, _, _ = get(addr, "/v2/health/live")
    check(st == 200, tag + ": live %d" % st)
    st, _, _ = get(addr, "/v2/health/ready")
    check(st == 200, tag + ": ready %d" % st)
    st, _, b = get(addr, "/v2")
    check(st == 200 and json.loads(b)["name"] == "planktond", tag + ": /v2")
    st, _, b = get(addr, base)
    check(st == 200 and json.loads(b)["inputs"][0]["name"] == "IMAGE", tag + ": model metadata")
    st, _, b = get(addr, base + "/versions/" + json.loads(get(addr, base)[2])["versions"][0] + "/config")
    check(st == 200 and json.loads(b)["max_batch_size"] == 64, tag + ": config by version")
    st, _, b = get(addr, base + "/ready")
    check(st == 200, tag + ": model ready")
    st, _, b = get(addr, "/v2/models/nope/ready")
    check(st == 404 and "error" in json.loads(b), tag + ": unknown model ready 404 %d" % st)
    st, _, b = get(addr, "/metrics")
    check(st == 200 and b"planktond_inference_request_total" in b, tag + ": /metrics on the same listener")

    if not unix:
        c = th.InferenceServerClient(addr)
        check(c.is_server_live() and c.is_server_ready() and c.is_model_ready(MODEL), tag + ": tritonclient health")
        cfg = c.get_model_config(MODEL)
        check(cfg["input"][0]["data_type"] == "TYPE_STRING", tag + ": tritonclient config")
        # JPEG BYTES, binary (tritonclient's default)
        inp = th.InferInput("IMAGE", [len(crops)], "BYTES")
        inp.set_data_from_numpy(np.array([b for _, b in crops], dtype=np.object_))
        got = c.infer(MODEL, [inp], parameters={"tta": 1}).as_numpy("PROBABILITIES")
        worst = max(float(np.max(np.abs(got[i] - as_vector(ref1[p], labels)))) for i, (p, _) in enumerate(crops))
        check(worst <= 1e-6, tag + ": JPEG BYTES vs native: max diff %g" % worst)
        print("%s: JPEG BYTES [%d]: max |diff| vs native %.3g" % (tag, len(crops), worst))
        # the same with JSON output (binary_data=False) and with binary output
        for binary in (False, True):
            out = th.InferRequestedOutput("PROBABILITIES", binary_data=binary)
            got = c.infer(MODEL, [inp], outputs=[out], parameters={"tta": 1}).as_numpy("PROBABILITIES")
            worst = max(float(np.max(np.abs(got[i] - as_vector(ref1[p], labels)))) for i, (p, _) in enumerate(crops))
            check(worst <= 1e-6, tag + ": output binary=%s vs native: %g" % (binary, worst))
        # UINT8 pixels as JSON data and as binary data
        p, b = pngs[0]
        px = np.array(Image.open(io.BytesIO(b)).convert("L"), dtype=np.uint8)[None]
        for binary in (False, True):
            u = th.InferInput("IMAGE", list(px.shape), "UINT8")
            u.set_data_from_numpy(px, binary_data=binary)
            got = c.infer(MODEL, [u], parameters={"tta": 1}).as_numpy("PROBABILITIES")
            d = float(np.max(np.abs(got[0] - as_vector(ref1[p], labels))))
            check(d <= 1e-6, tag + ": UINT8 binary=%s vs native PNG: %g" % (binary, d))
        # classification strings, JSON
        out = th.InferRequestedOutput("PROBABILITIES", binary_data=False, class_count=2)
        cls = c.infer(MODEL, [inp], outputs=[out], parameters={"tta": 1}).as_numpy("PROBABILITIES")
        for i, (p, _) in enumerate(crops):
            v = as_vector(ref1[p], labels)
            top = sorted(range(len(labels)), key=lambda k: (-v[k], k))[:2]
            want = ["%f:%d:%s" % (v[k], k, labels[k]) for k in top]
            gotc = [x.decode() if isinstance(x, bytes) else x for x in cls[i]]
            check([g.split(":")[1:] for g in gotc] == [w.split(":")[1:] for w in want] and
                  all(abs(float(g.split(":")[0]) - v[k]) <= 1e-6 for g, k in zip(gotc, top)),
                  tag + ": classification %r, want %r" % (gotc, want))
        expect_error(lambda: c.infer("nope", [inp]), None, "unknown model", tag + ": unknown model (tritonclient)")
        st_json = c.get_inference_statistics(MODEL)["model_stats"][0]
        check(int(st_json["inference_count"]) > 0, tag + ": stats")
        c.close()

    # by hand: binary extension, errors and hostile bodies
    j, raw = binary_infer_body([b for _, b in crops[:2]], params={"tta": 1})
    hl = b"Inference-Header-Content-Length: %d\r\n" % len(j)
    st, h, b = post(addr, base + "/infer", j + raw, hl)
    check(st == 200, tag + ": binary infer %d %r" % (st, b[:200]))
    if st == 200:
        res = json.loads(b)
        check(res.get("parameters", {}).get("tta") == 1,
              tag + ": REST answer reports tta 1: %r" % res.get("parameters"))
        v = np.array(res["outputs"][0]["data"], dtype=np.float64).reshape(2, len(labels))
        d = max(float(np.max(np.abs(v[i] - as_vector(ref1[crops[i][0]], labels)))) for i in range(2))
        check(d <= 1e-6, tag + ": JSON answer vs native: %g" % d)
    j2, raw2 = binary_infer_body([b for _, b in crops[:2]], outputs=[{"name": "PROBABILITIES", "parameters": {"binary_data": True}}], params={"tta": 1})
    st, h, b = post(addr, base + "/infer", j2 + raw2, b"Inference-Header-Content-Length: %d\r\n" % len(j2))
    check(st == 200 and "inference-header-content-length" in h, tag + ": binary output header")
    if st == 200 and "inference-header-content-length" in h:
        n = int(h["inference-header-content-length"])
        hdr = json.loads(b[:n])
        size = hdr["outputs"][0]["parameters"]["binary_data_size"]
        v = np.frombuffer(b[n:n + size], dtype=np.float32).reshape(2, len(labels))
        d = max(float(np.max(np.abs(v[i] - as_vector(ref1[crops[i][0]], labels)))) for i in range(2))
        check(d <= 1e-6 and len(b) == n + size, tag + ": binary output vs native: %g" % d)

    def err(st_want, body, extra, needle, what):
        st, _, b = post(addr, base + "/infer", body, extra)
        try:
            e = json.loads(b).get("error", "")
        except ValueError:
            e = ""
        check(st == st_want and needle in e, "%s: %s: %d %r (want %d, %r)" % (tag, what, st, b[:160], st_want, needle))

    bad_j, bad_raw = binary_infer_body([crops[0][1], b"not an image", crops[1][1]])
    err(400, bad_j + bad_raw, b"Inference-Header-Content-Length: %d\r\n" % len(bad_j), "element 1", "bad crop in the middle")
    err(400, j + raw, b"Inference-Header-Content-Length: %d\r\n" % (len(j) + len(raw) + 5), "more than the body", "header length beyond the body")
    big = json.loads(j)
    big["inputs"][0]["parameters"]["binary_data_size"] = 4 << 30
    bj = json.dumps(big).encode()
    err(400, bj + raw, b"Inference-Header-Content-Length: %d\r\n" % len(bj), "runs past the end", "4 GiB binary_data_size")
    err(400, j + raw + b"xx", hl, "after the inputs", "bytes after the binary inputs")
    err(400, b"[" * 5000 + b"]" * 5000, b"", "does not parse", "deep JSON")
    err(400, b'{"inputs": 7}', b"", "\"inputs\" must be an array", "inputs not an array")
    lj = json.dumps({"inputs": json.loads(j)["inputs"], "outputs": [{"name": "LOGITS"}]}).encode()
    err(400, lj + raw, b"Inference-Header-Content-Length: %d\r\n" % len(lj), "unknown output", "unknown output")
    st, _, b = post(addr, "/v2/models/nope/infer", j + raw, hl)
    check(st == 404 and "unknown model" in json.loads(b)["error"], tag + ": unknown model infer 404")
    # a body over limits.max_frame_bytes (the daemon runs with 4 MiB)
    st, _, _ = http_raw(addr, b"POST " + base.encode() + b"/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (5 << 20) + b"x" * 65536)
    check(st == 413, tag + ": body over the limit: %d" % st)
    # Content-Length that lies (longer than what comes): the request times out or the connection closes, no answer
    req = (b"POST " + base.encode() + b"/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"{}")
    st, _, _ = http_raw(addr, req, timeout=5)
    check(st in (0, 408), tag + ": Content-Length lie: %d" % st)
    # still serving
    st, _, _ = post(addr, base + "/infer", j + raw, hl)
    check(st == 200, tag + ": serving after the hostile requests")


def mixing_test(tmp, crops, labels, ref1):
    """64 concurrent gRPC calls (async_infer, one crop each) and 64 native
    requests (plankton-client classify -j 64) at once, with a batcher that
    waits up to 0.5 s for a full batch of 128: a batch of more than 64
    images can only hold crops of both front ends. Every answer equals the
    native reference."""
    n = 64
    addr = "127.0.0.1:%d" % free_port()
    d = Daemon(tmp, addr, "127.0.0.1:%d" % free_port(),
               ["--max-batch", str(2 * n), "--max-queue-delay-us", "500000"])
    try:
        c = tg.InferenceServerClient(addr)
        answers, errors = [], []
        lock = threading.Lock()

        def cb(result, error):
            with lock:
                (errors if error else answers).append(error or result)

        files = [crops[i % len(crops)][0] for i in range(n)]
        nat = subprocess.Popen([os.environ["PLANKTON_CLIENT"], "--socket", d.sock, "classify", "--probs", "-f",
                                "json", "--tta", "1", "-j", str(n)] + files, stdout=subprocess.PIPE, text=True)
        for i in range(n):
            c.async_infer(MODEL, [bytes_input([crops[i % len(crops)][1]])], callback=cb, request_id=str(i),
                          parameters={"tta": 1})
        out, _ = nat.communicate(timeout=120)
        deadline = time.time() + 60
        while time.time() < deadline and len(answers) + len(errors) < n:
            time.sleep(0.05)
        check(nat.returncode == 0 and len(out.splitlines()) == n, "mixing: native answers")
        nworst = 0.0
        for line in out.splitlines():
            j = json.loads(line)
            nworst = max(nworst, float(np.max(np.abs(as_vector(j["probabilities"], labels) -
                                                      as_vector(ref1[j["path"]], labels)))))
        check(nworst <= 1e-6, "mixing: native answers vs reference: %g" % nworst)
        check(len(answers) == n and not errors, "mixing: gRPC answers %d, errors %r" % (len(answers), errors[:2]))
        worst = 0.0
        for r in answers:
            i = int(r.get_response().id)
            v = r.as_numpy("PROBABILITIES")[0]
            worst = max(worst, float(np.max(np.abs(v - as_vector(ref1[crops[i % len(crops)][0]], labels)))))
        check(worst <= 1e-6, "mixing: gRPC answers vs native: %g" % worst)
        h = batch_hist(d.metrics())
        mixed = h.get(str(2 * n), 0) - h.get(str(n), 0)
        print("mixing: %d async_infer + %d native at once: batch-size histogram %s" %
              (n, n, {k: v for k, v in h.items() if v}))
        check(mixed >= 1, "mixing: no batch of %d..%d images (histogram %r)" % (n + 1, 2 * n, h))
        c.close()
    finally:
        d.stop()


def reload_test(tmp, crops):
    """SIGHUP while gRPC calls run: none fails."""
    addr = "127.0.0.1:%d" % free_port()
    d = Daemon(tmp, addr, "127.0.0.1:%d" % free_port())
    try:
        c = tg.InferenceServerClient(addr)
        answers, errors = [], []
        lock = threading.Lock()

        def cb(result, error):
            with lock:
                (errors if error else answers).append(error or result)

        n = 0
        for round_ in range(3):
            for i in range(16):
                c.async_infer(MODEL, [bytes_input([crops[i % len(crops)][1]] * 2)], callback=cb,
                              parameters={"tta": 1})
                n += 1
            d.p.send_signal(signal.SIGHUP)
            time.sleep(0.3)
        deadline = time.time() + 120
        while time.time() < deadline and len(answers) + len(errors) < n:
            time.sleep(0.05)
        check(len(answers) == n and not errors, "reload: %d of %d answered, errors %r" % (len(answers), n, [str(e) for e in errors[:2]]))
        log = open(d.log_path, "rb").read().decode(errors="replace")
        check(log.count("SIGHUP") >= 1 or "reload" in log, "reload: the daemon logged the reloads")
        check(c.is_server_ready(), "reload: ready after")
        c.close()
    finally:
        check(d.stop() == 0, "reload: exit 0")


def drain_test(addr, daemon, crops):
    """SIGTERM with calls in flight: every accepted call answered OK, then
    the daemon exits 0; a call after the drain began is refused."""
    c = tg.InferenceServerClient(addr)
    answers, errors = [], []
    lock = threading.Lock()

    def cb(result, error):
        with lock:
            (errors if error else answers).append(error or result)

    n = 12
    for i in range(n):
        c.async_infer(MODEL, [bytes_input([crops[i % len(crops)][1]] * 4)], callback=cb)
    time.sleep(0.3)  # they are in
    daemon.p.send_signal(signal.SIGTERM)
    rc = daemon.p.wait(timeout=120)
    deadline = time.time() + 10
    while time.time() < deadline and len(answers) + len(errors) < n:
        time.sleep(0.05)
    check(rc == 0, "drain: exit %s" % rc)
    check(len(answers) + len(errors) == n, "drain: %d of %d calls answered" % (len(answers) + len(errors), n))
    check(not errors, "drain: calls failed: %r" % [str(e) for e in errors[:3]])
    c.close()


def gauge(daemon, name):
    m = re.search(r"^%s (\S+)$" % name, daemon.metrics(), re.M)
    return float(m.group(1)) if m else -1.0


def requests_cancelled(daemon):
    return gauge(daemon, "planktond_requests_cancelled_total")


def settle(daemon):
    """Waits until the daemon holds no request (at most 30 s)."""
    deadline = time.time() + 30
    while time.time() < deadline and gauge(daemon, "planktond_inference_in_flight_requests") != 0:
        time.sleep(0.1)


def cancel_test(tmp, crops):
    """Clients that go away mid-call (unary calls cancelled, a stream
    cancelled, REST connections closed): the crops of their calls not computed yet are dropped, not
    computed for no one (requests_cancelled grows by most of them), and the
    daemon answers the next call. The engine is slowed (PD_FAULT_INJECT: 150
    ms a batch of 2, the most crops a call may carry then; the daemon is
    planktond-faultinject) so that the calls wait in the queue."""
    addr = "127.0.0.1:%d" % free_port()
    faulty = os.environ.get("PLANKTOND_FAULTINJECT")
    check(bool(faulty), "PLANKTOND_FAULTINJECT names planktond-faultinject (meson sets it)")
    if not faulty:
        return
    plain = os.environ["PLANKTOND"]
    os.environ.update(PD_FAULT_INJECT="delay_ms=150", PLANKTOND=faulty)
    try:
        http_addr = "127.0.0.1:%d" % free_port()
        d = Daemon(tmp, addr, http_addr, ["--max-batch", "2", "--threads", "1"],
                   name="planktond-cancel")
    finally:
        del os.environ["PD_FAULT_INJECT"]
        os.environ["PLANKTOND"] = plain
    try:
        n = 16  # calls of 2 crops
        ch = channel(addr)
        call = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        futs = [call.future(infer_request_bytes([crops[0][1]] * 2, tta=1)) for _ in range(n)]
        time.sleep(0.5)  # a few batches are computed
        for f in futs:
            f.cancel()
        settle(d)
        got = requests_cancelled(d)
        check(n <= got < 2 * n, "cancelled unary calls: %d of their %d crops dropped (want %d..%d)"
              % (got, 2 * n, n, 2 * n - 1))
        # a stream cancelled with its messages queued
        stream = ch.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")
        msgs = [infer_request_bytes([crops[1][1]] * 2, tta=1, request_id=str(i)) for i in range(n)]
        it = stream(iter(msgs))
        time.sleep(0.5)
        it.cancel()
        before = got
        settle(d)
        got = requests_cancelled(d)
        check(got - before >= n, "cancelled stream: %d of its %d crops dropped (want >= %d)"
              % (got - before, 2 * n, n))
        # REST clients that close their connections with requests unanswered
        j, raw = binary_infer_body([crops[2][1]] * 2)
        path = "/v2/models/%s/infer" % MODEL
        req = (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: " +
               str(len(j) + len(raw)).encode() + b"\r\nInference-Header-Content-Length: " +
               str(len(j)).encode() + b"\r\n\r\n" + j + raw)
        host, port = http_addr.rsplit(":", 1)
        socks = []
        for _ in range(n):
            sk = socket.create_connection((host, int(port)), timeout=10)
            sk.sendall(req)
            socks.append(sk)
        time.sleep(0.5)
        for sk in socks:
            sk.close()
        before = got
        settle(d)
        got = requests_cancelled(d)
        check(got - before >= n, "REST connections closed: %d of their %d crops dropped (want >= %d)"
              % (got - before, 2 * n, n))
        ok = call(infer_request_bytes([crops[2][1]], tta=1), timeout=60)
        r = pb.ModelInferResponse.FromString(ok)
        check(len(r.raw_output_contents) >= 1 and r.outputs[0].shape[0] == 1,
              "a call after the cancels is answered: %r" % r.outputs)
        ch.close()
    finally:
        d.stop()


def main():
    need_env()
    crops = real_crops(6)
    tmp = tempfile.mkdtemp(prefix="pd-kserve-")
    pngs = []
    for p, b in crops[:4]:
        q = os.path.join(tmp, os.path.basename(p)[:-4] + ".png")
        Image.open(io.BytesIO(b)).convert("L").save(q)
        pngs.append((q, open(q, "rb").read()))
    for unix in (False, True):
        addr = "unix:" + os.path.join(tmp, "grpc.sock") if unix else "127.0.0.1:%d" % free_port()
        http_addr = "unix:" + os.path.join(tmp, "http.sock") if unix else "127.0.0.1:%d" % free_port()
        d = Daemon(tmp, addr, http_addr, ["--max-frame-bytes", str(4 << 20), "--frame-timeout-ms", "2000"])
        try:
            # the model's class order: the native answer's (JSON keeps it)
            labels = list(native(d, [crops[0][0]], 1)[crops[0][0]].keys())
            ref1 = run_suite(addr, d, crops, pngs, labels, unix)
            rest_suite(http_addr, d, crops, pngs, labels, ref1, unix)
            if unix:
                drain_test(addr, d, crops)
        finally:
            if d.p.poll() is None:
                d.stop()
    mixing_test(tmp, crops, labels, ref1)
    cancel_test(tmp, crops)
    reload_test(tmp, crops)
    if not FAILS:
        shutil.rmtree(tmp, ignore_errors=True)  # kept, with the daemons' logs, when something failed
    else:
        print("logs in", tmp)
    print("kserve_clients: %d checks, %d failed" % (CHECKS[0], len(FAILS)))
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
