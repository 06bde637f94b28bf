"""A model's thresholds over KServe (daemon/kserve/README.md): for a model
with thresholds, every inference answer over gRPC and REST carries the
response parameter "unclassified", one 0/1 per crop in input order, equal
to the native ClassifyResponse's flag (plankton-client -f json) for the
same crops, PROBABILITIES staying the raw scores; ModelConfig's parameters
carry the thresholds and lineage; a model without them answers as before."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kserve_harness import (  # noqa: E402 (re-executes under the venv's python where needed)
    MODEL, MODEL_DIR, Daemon, check, finish, free_port, need_env, real_crops, np, tg, th)


def native_flags(d, paths):
    r = subprocess.run([os.environ["PLANKTON_CLIENT"], "--socket", d.sock, "classify", "-f", "json",
                        "--tta", "1"] + paths, capture_output=True, text=True)
    rows = [json.loads(ln) for ln in r.stdout.splitlines()]
    return r.returncode, rows


def main():
    need_env()
    import yaml
    labels = list(yaml.safe_load(open(os.path.join(MODEL_DIR, "model.yaml")))["classes"])
    crops = real_crops(24)
    paths = [p for p, _ in crops]
    tmp = tempfile.mkdtemp(prefix="pd-kserve-thr-")
    try:
        model = os.path.join(tmp, "model")
        shutil.copytree(MODEL_DIR, model)
        with open(os.path.join(model, "model.yaml"), "a") as fh:
            # the tiny model's top probabilities lie around 0.2..0.6: both kinds of crop
            fh.write("thresholds:\n" + "".join("  %s: 0.35\n" % c for c in labels))
            fh.write("lineage:\n" + "".join("  %s: \"Root>%s\"\n" % (c, c) for c in labels))
        d = Daemon(tmp, "127.0.0.1:%d" % free_port(), "127.0.0.1:%d" % free_port(), model_dir=model)
        try:
            rc, rows = native_flags(d, paths)
            want = ",".join("1" if r["unclassified"] else "0" for r in rows)
            check(rc == 0 and len(rows) == len(paths) and "0" in want and "1" in want,
                  "native answers with both kinds: %r" % want)
            c = tg.InferenceServerClient(d.grpc_addr)
            inp = tg.InferInput("IMAGE", [len(crops)], "BYTES")
            inp.set_data_from_numpy(np.array([b for _, b in crops], dtype=np.object_))
            r = c.infer(MODEL, [inp], parameters={"tta": 1})
            got = r.get_response().parameters["unclassified"].string_param
            check(got == want, "gRPC unclassified %r, native %r" % (got, want))
            probs = r.as_numpy("PROBABILITIES")
            check(all(abs(float(probs[i].max()) - rows[i]["probability"]) < 1e-6
                      for i in range(len(rows))), "gRPC PROBABILITIES stay the raw scores")
            out = tg.InferRequestedOutput("PROBABILITIES", class_count=2)
            r = c.infer(MODEL, [inp], outputs=[out], parameters={"tta": 1})
            got = r.get_response().parameters["unclassified"].string_param
            top = r.as_numpy("PROBABILITIES")
            check(got == want and all(top[i][0].decode().endswith(":" + rows[i]["label"])
                                      for i in range(len(rows))),
                  "gRPC classification strings unchanged (raw top class), the flag beside them")
            cfg = c.get_model_config(MODEL).config
            check(json.loads(cfg.parameters["thresholds"].string_value) == {lb: 0.35 for lb in labels}
                  and json.loads(cfg.parameters["lineage"].string_value)
                  == {lb: "Root>" + lb for lb in labels},
                  "gRPC ModelConfig parameters thresholds and lineage: %r" % dict(cfg.parameters))
            c.close()
            hc = th.InferenceServerClient(d.http_addr)
            hinp = th.InferInput("IMAGE", [len(crops)], "BYTES")
            hinp.set_data_from_numpy(np.array([b for _, b in crops], dtype=np.object_))
            for binary in (False, True):
                o = th.InferRequestedOutput("PROBABILITIES", binary_data=binary)
                hr = hc.infer(MODEL, [hinp], outputs=[o], parameters={"tta": 1})
                got = hr.get_response().get("parameters", {}).get("unclassified")
                check(got == want, "REST (binary %s) unclassified %r, native %r" % (binary, got, want))
            hcfg = hc.get_model_config(MODEL)
            check(json.loads(hcfg.get("parameters", {}).get("lineage", {}).get("string_value", "{}"))
                  == {lb: "Root>" + lb for lb in labels}, "REST config lineage: %r"
                  % hcfg.get("parameters"))
            hc.close()
        finally:
            d.stop()
        d = Daemon(tmp, "127.0.0.1:%d" % free_port(), "127.0.0.1:%d" % free_port(), name="plain")
        try:
            c = tg.InferenceServerClient(d.grpc_addr)
            inp = tg.InferInput("IMAGE", [len(crops)], "BYTES")
            inp.set_data_from_numpy(np.array([b for _, b in crops], dtype=np.object_))
            r = c.infer(MODEL, [inp], parameters={"tta": 1})
            check("unclassified" not in r.get_response().parameters,
                  "no thresholds: no unclassified parameter")
            cfg = c.get_model_config(MODEL).config
            check("thresholds" not in cfg.parameters and "lineage" not in cfg.parameters,
                  "no thresholds, no lineage: not in ModelConfig")
            c.close()
        finally:
            d.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    finish("kserve_thresholds")


if __name__ == "__main__":
    main()
