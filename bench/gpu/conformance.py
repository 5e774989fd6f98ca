#!/usr/bin/env python3
"""Conformance and a first timing of the server on the GPU machine (no .NET there: the server is the staged
self-contained build). For each model folder: start the server with --device, send every reference.json case (greedy,
token ids), compare with Hugging Face's tokens, and time one 128-token greedy completion at concurrency 1.

  python3 conformance.py <server executable> <out.json> <device> <model folder>...
"""
import json, os, subprocess, sys, time, urllib.request

exe, out_path, device, *models = sys.argv[1:]
results = []
port = 18400
for model in models:
    port += 1
    log = open(f"/tmp/server-{port}.log", "w")
    server = subprocess.Popen([exe, "--model", model, "--device", device, "--urls", f"http://127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    entry = {"model": os.path.basename(model), "device": device}
    try:
        for _ in range(240):
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2).status == 200:
                    break
            except Exception:
                time.sleep(0.5)
        def complete(body):
            request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", json.dumps(body).encode(), {"Content-Type": "application/json"})
            return json.load(urllib.request.urlopen(request, timeout=120))
        cases = json.load(open(os.path.join(model, "reference.json")))["cases"]
        matched = 0
        for case in cases:
            answer = complete({"prompt": case["prompt"], "max_tokens": len(case["greedy"]), "temperature": 0, "ignore_eos": True, "return_token_ids": True})
            matched += answer["choices"][0]["token_ids"] == case["greedy"]
        entry["cases"] = len(cases)
        entry["matched"] = matched
        complete({"prompt": cases[0]["prompt"], "max_tokens": 16, "temperature": 0, "ignore_eos": True})
        started = time.time()
        complete({"prompt": cases[0]["prompt"], "max_tokens": 128, "temperature": 0, "ignore_eos": True})
        entry["c1_128_tokens_s"] = round(time.time() - started, 4)
        entry["c1_tokens_per_s"] = round(128 / (time.time() - started), 1)
    except Exception as error:
        entry["error"] = repr(error)
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
        entry["startup_log"] = [line.strip() for line in open(f"/tmp/server-{port}.log") if line.startswith("info:") or "error" in line.lower()][:5]
    results.append(entry)
    print(json.dumps(entry), flush=True)

json.dump(results, open(out_path, "w"), indent=2)
