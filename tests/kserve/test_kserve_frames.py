"""The frames variant of the served model over KServe ("M.frames"), with
Triton's own clients (tritonclient 2.48.0) against the real planktond:
- ModelMetadata, ModelConfig (max_batch_size 0), ModelReady and the
  repository index describe M.frames (inputs FRAME, BACKGROUND; outputs
  BOXES, AREAS, PROBABILITIES) over gRPC and REST;
- a frame made of real NDSB crops pasted onto a white field, sent as PNG
  BYTES over gRPC (unary and stream) and REST, and as UINT8 and UINT16
  (12 significant bits) pixels over gRPC, and as UINT8 JSON data over
  REST, gives the native protocol's
  boxes, areas and probabilities (plankton-client segment, every class) to
  1e-6; the classification extension's strings on PROBABILITIES; the
  response parameters (frame size, objects found, dropped counts,
  timings); with a white BACKGROUND (flat field) the same boxes; a stream
  of frame, bad frame, frame; a white frame answered with no object;
- errors over both: a frame over limits.max_frame_pixels, zero-size, bit
  depth that does not match, a background of another size, bad
  segmentation parameters (INVALID_ARGUMENT naming the values), more
  objects than batching.max_queue (RESOURCE_EXHAUSTED, nothing queued), and
  a stream lives on after a bad frame;
- a client that goes away (gRPC calls cancelled, REST connections closed)
  has its frames' objects dropped (requests_cancelled grows), with the
  engine slowed by planktond-faultinject so that they wait in the queue."""
import io
import json
import os
import re
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kserve_harness import (MODEL, Daemon, Image, channel, check, finish, free_port,  # noqa: E402
                            need_env, np, pb, real_crops, tg, th)
import subprocess  # noqa: E402

FRAMES = MODEL + ".frames"
W, H = 640, 360


def make_frame(crops):
    """Real crops pasted (darkest wins) onto a white field, 40 px apart."""
    frame = np.full((H, W), 255, np.uint8)
    x, y, row_h = 30, 30, 0
    for _, b in crops:
        c = np.array(Image.open(io.BytesIO(b)).convert("L"))
        h, w = c.shape
        if x + w + 30 > W:
            x, y, row_h = 30, y + row_h + 40, 0
        if y + h + 30 > H:
            break
        frame[y:y + h, x:x + w] = np.minimum(frame[y:y + h, x:x + w], c)
        x += w + 40
        row_h = max(row_h, h)
    return frame


def png(gray):
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, "PNG")
    return buf.getvalue()


def native_segment(daemon, path, n_classes, labels):
    """plankton-client segment's objects: (boxes, areas, probabilities)."""
    r = subprocess.run([os.environ["PLANKTON_CLIENT"], "--socket", daemon.sock, "segment", "-f",
                        "json", "-k", str(n_classes), path], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("plankton-client segment: " + r.stderr)
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    boxes = np.array([[o["x"], o["y"], o["width"], o["height"]] for o in rows], np.int64)
    areas = np.array([o["area"] for o in rows], np.int64)
    probs = np.zeros((len(rows), n_classes))
    for i, o in enumerate(rows):
        for t in o["top"]:
            probs[i, labels.index(t["label"])] = t["probability"]
    return boxes.reshape(-1, 4), areas, probs


def same(tag, got, ref):
    b, a, p = ref
    gb, ga, gp = got
    check(gb.shape == b.shape and (gb == b).all(), "%s: boxes %s == native %s" % (tag, gb.tolist(), b.tolist()))
    check(ga.shape == a.shape and (ga == a).all(), "%s: areas %s == native %s" % (tag, ga.tolist(), a.tolist()))
    d = float(np.abs(gp - p).max()) if gp.shape == p.shape and p.size else (0.0 if gp.shape == p.shape else 1.0)
    check(gp.shape == p.shape and d <= 1e-6, "%s: probabilities %s to native %s, max diff %g"
          % (tag, gp.shape, p.shape, d))


def result(r):
    return (r.as_numpy("BOXES").astype(np.int64).reshape(-1, 4), r.as_numpy("AREAS").astype(np.int64),
            r.as_numpy("PROBABILITIES").astype(np.float64))


def frame_input(mod, data, name="FRAME"):
    if isinstance(data, bytes):
        i = mod.InferInput(name, [1], "BYTES")
        i.set_data_from_numpy(np.array([data], dtype=np.object_))
    else:
        i = mod.InferInput(name, list(data.shape), "UINT16" if data.dtype == np.uint16 else "UINT8")
        i.set_data_from_numpy(data)
    return i


def expect_error(tag, fn, code, *needles):
    """fn() fails with gRPC status code (or its HTTP status) and a message
    holding every needle."""
    try:
        fn()
        check(False, "%s: answered, want %s" % (tag, code))
        return
    except Exception as e:  # tritonclient's InferenceServerException
        msg = str(e.message() if hasattr(e, "message") else e)
        st = str(e.status() if hasattr(e, "status") else "")
        check(code in st or code in msg, "%s: status %s (want %s): %s" % (tag, st, code, msg))
        for n in needles:
            check(n in msg, "%s: message names %r: %s" % (tag, n, msg))


def gauge(daemon, name):
    m = re.search(r"^%s (\S+)$" % name, daemon.metrics(), re.M)
    return float(m.group(1)) if m else -1.0


def settle(daemon):
    deadline = time.time() + 30
    while time.time() < deadline and gauge(daemon, "planktond_inference_in_flight_requests") != 0:
        time.sleep(0.1)


def metadata_tests(g, hc, n_classes):
    md = g.get_model_metadata(FRAMES)
    check(md.name == FRAMES, "gRPC metadata name %r" % md.name)
    check([(t.name, t.datatype, list(t.shape)) for t in md.inputs] ==
          [("FRAME", "BYTES", [1]), ("BACKGROUND", "BYTES", [1])], "gRPC metadata inputs %s" % md.inputs)
    check([(t.name, t.datatype, list(t.shape)) for t in md.outputs] ==
          [("BOXES", "INT32", [-1, 4]), ("AREAS", "INT32", [-1]),
           ("PROBABILITIES", "FP32", [-1, n_classes])], "gRPC metadata outputs %s" % md.outputs)
    cfg = g.get_model_config(FRAMES).config
    check(cfg.name == FRAMES and cfg.max_batch_size == 0, "gRPC config: %s max_batch_size %d"
          % (cfg.name, cfg.max_batch_size))
    check([i.name for i in cfg.input] == ["FRAME", "BACKGROUND"] and cfg.input[1].optional,
          "gRPC config inputs %s" % cfg.input)
    check([o.name for o in cfg.output] == ["BOXES", "AREAS", "PROBABILITIES"],
          "gRPC config outputs %s" % cfg.output)
    check(g.is_model_ready(FRAMES), "gRPC ModelReady %s" % FRAMES)
    names = [m.name for m in g.get_model_repository_index().models]
    check(MODEL in names and FRAMES in names, "gRPC repository index names %s" % names)
    hm = hc.get_model_metadata(FRAMES)
    check(hm["name"] == FRAMES and [t["name"] for t in hm["inputs"]] == ["FRAME", "BACKGROUND"] and
          [(t["name"], t["datatype"], t["shape"]) for t in hm["outputs"]] ==
          [("BOXES", "INT32", [-1, 4]), ("AREAS", "INT32", [-1]), ("PROBABILITIES", "FP32", [-1, n_classes])],
          "REST metadata %s" % hm)
    hcfg = hc.get_model_config(FRAMES)
    check(hcfg["max_batch_size"] == 0 and hcfg["name"] == FRAMES, "REST config %s" % hcfg)
    check(hc.is_model_ready(FRAMES), "REST ready %s" % FRAMES)
    check(FRAMES in [m["name"] for m in hc.get_model_repository_index()], "REST repository index")
    expect_error("gRPC metadata of an unknown frames model", lambda: g.get_model_metadata("nosuch.frames"),
                 "NOT_FOUND", "nosuch.frames", "frames variant")
    expect_error("REST infer of an unknown frames model",
                 lambda: hc.infer("nosuch.frames", [frame_input(th, b"x")]), "404", "nosuch.frames")


def answer_tests(d, g, hc, frame, frame_png_path, labels):
    n = len(labels)
    ref = native_segment(d, frame_png_path, n, labels)
    check(len(ref[0]) >= 3, "the native protocol finds the pasted crops: %d objects" % len(ref[0]))
    fpng = open(frame_png_path, "rb").read()
    r = g.infer(FRAMES, [frame_input(tg, fpng)])
    same("gRPC PNG", result(r), ref)
    p = r.get_response().parameters
    check(p["frame_width"].int64_param == W and p["frame_height"].int64_param == H,
          "gRPC parameters frame size %s" % p)
    check(p["objects_found"].int64_param >= len(ref[0]), "gRPC objects_found %s" % p["objects_found"])
    check(all(k in p for k in ("dropped_small", "dropped_cap", "absorbed", "decode_us", "segment_us",
                               "queue_us", "compute_us", "tta")), "gRPC response parameters %s" % sorted(p))
    check(p["compute_us"].int64_param > 0, "gRPC compute_us %s" % p["compute_us"])
    check(r.get_response().model_name == FRAMES, "gRPC answer's model name %r" % r.get_response().model_name)
    same("gRPC UINT8", result(g.infer(FRAMES, [frame_input(tg, frame)])), ref)
    f16 = frame.astype(np.uint16) << 4
    same("gRPC UINT16 12 bits", result(g.infer(FRAMES, [frame_input(tg, f16)],
                                               parameters={"significant_bits": 12})), ref)
    same("REST PNG", result(hc.infer(FRAMES, [frame_input(th, fpng)])), ref)
    same("REST UINT8 JSON", result(hc.infer(FRAMES, [_json_u8(frame)],
                                            outputs=[th.InferRequestedOutput(x, binary_data=False)
                                                     for x in ("BOXES", "AREAS", "PROBABILITIES")])), ref)
    # a flat field (white, as the frame's columns are) sent with the frame: the same objects
    white = np.full(frame.shape, 255, np.uint8)
    for tag, mod, cl in (("gRPC", tg, g), ("REST", th, hc)):
        rb = cl.infer(FRAMES, [frame_input(mod, frame), frame_input(mod, white, "BACKGROUND")])
        check((rb.as_numpy("BOXES") == ref[0]).all() if rb.as_numpy("BOXES").shape == ref[0].shape else False,
              "%s with a white BACKGROUND: boxes %s" % (tag, rb.as_numpy("BOXES").tolist()))
    # the classification extension: the best 3, as Triton formats them
    rc = g.infer(FRAMES, [frame_input(tg, fpng)], outputs=[tg.InferRequestedOutput("PROBABILITIES", class_count=3)])
    s = rc.as_numpy("PROBABILITIES")
    best = np.argsort(-ref[2], axis=1, kind="stable")[:, :3]
    want = [["%f:%d:%s" % (ref[2][i, j], j, labels[j]) for j in best[i]] for i in range(len(best))]
    got = [[x.decode() for x in row] for row in s]
    check(s.shape == (len(ref[0]), 3) and [[e.split(":")[1:] for e in row] for row in got] ==
          [[e.split(":")[1:] for e in row] for row in want], "classification strings %s vs %s" % (got[:1], want[:1]))
    # a stream: frame, bad frame, frame: two answers and one error, the stream lives on
    ch = channel(g_addr[0])
    stream = ch.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")

    def msg(data, rid):
        q = pb.ModelInferRequest(model_name=FRAMES, id=rid)
        q.inputs.add(name="FRAME", datatype="BYTES", shape=[1])
        q.raw_input_contents.append(len(data).to_bytes(4, "little") + data)
        return q
    answers = list(stream(iter([msg(fpng, "a").SerializeToString(), msg(b"not a frame", "b").SerializeToString(),
                                msg(fpng, "c").SerializeToString()]), timeout=60))
    got = [pb.ModelStreamInferResponse.FromString(a) for a in answers]
    errs = [a.error_message for a in got if a.error_message]
    oks = [a.infer_response for a in got if not a.error_message]
    check(len(oks) == 2 and len(errs) == 1, "stream: %d answers, %d errors %s" % (len(oks), len(errs), errs))
    for o in oks:
        check(o.outputs[0].name == "BOXES" and o.outputs[0].shape[0] == len(ref[0]), "stream answer %s" % o.id)
    ch.close()
    # a white frame: zero objects is a valid answer
    z = g.infer(FRAMES, [frame_input(tg, np.full((64, 64), 255, np.uint8))])
    check(z.as_numpy("BOXES").shape == (0, 4) and z.as_numpy("PROBABILITIES").shape == (0, n),
          "a white frame: no object %s" % (z.as_numpy("BOXES").shape,))
    return len(ref[0])


def _json_u8(frame):
    i = th.InferInput("FRAME", list(frame.shape), "UINT8")
    i.set_data_from_numpy(frame, binary_data=False)
    return i


g_addr = [None]


def error_tests(g, hc, frame, fpng):
    for tag, mod, cl in (("gRPC", tg, g), ("REST", th, hc)):
        def run(inputs, params=None, _cl=cl):
            return _cl.infer(FRAMES, inputs, parameters=params)
        code = "INVALID_ARGUMENT" if mod is tg else "400"
        expect_error(tag + " zero-size frame", lambda: run([frame_input(mod, np.zeros((0, 16), np.uint8))]),
                     code, "0", "empty")
        expect_error(tag + " 8-bit PNG with significant_bits 12",
                     lambda: run([frame_input(mod, fpng)], {"significant_bits": 12}), code, "12", "8-bit")
        expect_error(tag + " UINT8 with significant_bits 12",
                     lambda: run([frame_input(mod, frame)], {"significant_bits": 12}), code, "significant_bits", "12")
        expect_error(tag + " background of another size",
                     lambda: run([frame_input(mod, frame), frame_input(mod, frame[: H // 2], "BACKGROUND")]),
                     code, "%dx%d" % (W, H // 2), "%dx%d" % (W, H))
        expect_error(tag + " threshold 1.5", lambda: run([frame_input(mod, fpng)], {"threshold": 1.5}),
                     code, "threshold", "1.5")
        expect_error(tag + " min_area -3", lambda: run([frame_input(mod, fpng)], {"min_area": -3}),
                     code, "min_area", "-3")
        expect_error(tag + " background method", lambda: run([frame_input(mod, fpng)], {"background": "blur"}),
                     code, "background", "blur")
        expect_error(tag + " tta 5000", lambda: run([frame_input(mod, fpng)], {"tta": 5000}), code, "tta", "5000")
        expect_error(tag + " no FRAME", lambda: run([frame_input(mod, fpng, "IMAGE")]), code, "IMAGE", "FRAME")


def limits_tests(tmp, fpng, n_objects):
    """A small max_frame_pixels and max_queue: the frame over the pixel limit
    and a frame with more objects than the queue holds."""
    d = Daemon(tmp, "127.0.0.1:%d" % free_port(), "127.0.0.1:%d" % free_port(),
               ["--max-frame-pixels", str(W * H - 1), "--max-queue", str(n_objects - 1), "--max-batch", "2"], name="planktond-limits")
    try:
        g = tg.InferenceServerClient(d.grpc_addr)
        hc = th.InferenceServerClient(d.http_addr)
        small = png(np.full((100, 100), 255, np.uint8))
        for tag, mod, cl, code in (("gRPC", tg, g, "INVALID_ARGUMENT"), ("REST", th, hc, "400")):
            expect_error(tag + " frame over limits.max_frame_pixels",
                         lambda: cl.infer(FRAMES, [frame_input(mod, fpng)]), code,
                         "%dx%d" % (W, H), str(W * H), "max_frame_pixels", str(W * H - 1))
        d.stop()
        d.args[d.args.index("--max-frame-pixels") + 1] = str(64 << 20)
        d.start()
        g = tg.InferenceServerClient(d.grpc_addr)
        hc = th.InferenceServerClient(d.http_addr)
        before = gauge(d, "planktond_inference_exec_count_total")
        for tag, mod, cl, code in (("gRPC", tg, g, "RESOURCE_EXHAUSTED"), ("REST", th, hc, "429")):
            expect_error(tag + " more objects than max_queue", lambda: cl.infer(FRAMES, [frame_input(mod, fpng)]),
                         code, "max_queue")
        check(before >= 0 and gauge(d, "planktond_inference_exec_count_total") == before,
              "nothing was queued for the refused frames (batches %g -> %g)"
              % (before, gauge(d, "planktond_inference_exec_count_total")))
        r = g.infer(FRAMES, [frame_input(tg, small)])
        check(r.as_numpy("BOXES").shape == (0, 4), "after the refusals a frame is answered")
    finally:
        d.stop()


def cancel_tests(tmp, fpng, n_objects):
    faulty = os.environ.get("PLANKTOND_FAULTINJECT")
    check(bool(faulty), "PLANKTOND_FAULTINJECT names planktond-faultinject (meson sets it)")
    if not faulty:
        return
    plain = os.environ["PLANKTOND"]
    os.environ.update(PD_FAULT_INJECT="delay_ms=150", PLANKTOND=faulty)
    try:
        d = Daemon(tmp, "127.0.0.1:%d" % free_port(), "127.0.0.1:%d" % free_port(),
                   ["--max-batch", "2", "--threads", "1"], name="planktond-frames-cancel")
    finally:
        del os.environ["PD_FAULT_INJECT"]
        os.environ["PLANKTOND"] = plain
    try:
        n = 6
        ch = channel(d.grpc_addr)
        call = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        q = pb.ModelInferRequest(model_name=FRAMES)
        q.inputs.add(name="FRAME", datatype="BYTES", shape=[1])
        q.raw_input_contents.append(len(fpng).to_bytes(4, "little") + fpng)
        futs = [call.future(q.SerializeToString()) for _ in range(n)]
        time.sleep(0.5)
        for f in futs:
            f.cancel()
        settle(d)
        got = gauge(d, "planktond_requests_cancelled_total")
        check(got >= n * n_objects // 2, "cancelled gRPC frames: %g of their %d objects dropped (want >= %d)"
              % (got, n * n_objects, n * n_objects // 2))
        hdr = {"inputs": [{"name": "FRAME", "datatype": "BYTES", "shape": [1],
                           "parameters": {"binary_data_size": len(fpng) + 4}}]}
        j = json.dumps(hdr).encode()
        body = j + len(fpng).to_bytes(4, "little") + fpng
        req = (b"POST /v2/models/" + FRAMES.encode() + b"/infer HTTP/1.1\r\nHost: x\r\nContent-Length: " +
               str(len(body)).encode() + b"\r\nInference-Header-Content-Length: " + str(len(j)).encode() +
               b"\r\n\r\n" + body)
        host, port = d.http_addr.rsplit(":", 1)
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
        got = gauge(d, "planktond_requests_cancelled_total")
        check(got - before >= n * n_objects // 2, "REST frames closed: %g of their %d objects dropped (want >= %d)"
              % (got - before, n * n_objects, n * n_objects // 2))
        ok = call(q.SerializeToString(), timeout=120)
        r = pb.ModelInferResponse.FromString(ok)
        check(r.outputs[0].shape[0] == n_objects, "a frame after the cancels is answered: %s" % r.outputs[0].shape)
        ch.close()
    finally:
        d.stop()


def main():
    need_env()
    crops = real_crops(12)
    tmp = tempfile.mkdtemp(prefix="pd-kserve-frames-")
    frame = make_frame(crops)
    path = os.path.join(tmp, "frame.png")
    with open(path, "wb") as fh:
        fh.write(png(frame))
    g_addr[0] = "127.0.0.1:%d" % free_port()
    d = Daemon(tmp, g_addr[0], "127.0.0.1:%d" % free_port())
    n_objects = 0
    try:
        g = tg.InferenceServerClient(d.grpc_addr)
        hc = th.InferenceServerClient(d.http_addr)
        n_classes = int(g.get_model_metadata(MODEL).outputs[0].shape[1])
        rc = g.infer(MODEL + ".frames", [frame_input(tg, png(frame))],
                     outputs=[tg.InferRequestedOutput("PROBABILITIES", class_count=n_classes)])
        # the labels in class order, from the classification strings
        labels = [""] * n_classes
        for row in rc.as_numpy("PROBABILITIES"):
            for e in row:
                _, idx, lb = e.decode().split(":", 2)
                labels[int(idx)] = lb
        check(all(labels), "every class label is named in the classification strings")
        metadata_tests(g, hc, n_classes)
        n_objects = answer_tests(d, g, hc, frame, path, labels)
        error_tests(g, hc, frame, open(path, "rb").read())
    finally:
        d.stop()
    if n_objects >= 2:
        limits_tests(tmp, open(path, "rb").read(), n_objects)
        cancel_tests(tmp, open(path, "rb").read(), n_objects)
    finish("kserve_frames")


if __name__ == "__main__":
    main()
