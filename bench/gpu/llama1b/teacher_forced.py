#!/usr/bin/env python3
"""Teacher-forced logprobs from a server (issue 16's tolerance check).

  python3 teacher_forced.py URL HF.json OUT.json

Sends each fixed prompt + its fp32 reference continuation (hf_teacher_forced.py's HF.json) as one completions request
with echo, logprobs=2 and max_tokens=1, and keeps, for each continuation position, the server's logprob of the reference
token and its own top logprob there. Every position is conditioned on the same reference tokens, so a near tie that one
path breaks the other way does not derail the rest (as it does in a free-running greedy comparison).
"""
import json
import sys
import urllib.error
import urllib.request


def complete(url, ids):
    body = {"prompt": ids, "max_tokens": 1, "temperature": 0, "ignore_eos": True, "echo": True, "logprobs": 2}
    request = urllib.request.Request(url.rstrip("/") + "/v1/completions", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.load(response)["choices"][0]["logprobs"]
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"HTTP {error.code}: {error.read()[:500]!r}") from error


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    url, reference, out = sys.argv[1:]
    with open(reference) as f:
        hf = json.load(f)
    cases = []
    for case in hf["cases"]:
        prompt, tokens = case["prompt"], case["tokens"]
        try:
            logprobs = complete(url, prompt + tokens)
            # Entry j is token j's logprob given tokens [0, j); the continuation's tokens are entries len(prompt) ...
            start = len(prompt)
            ref = logprobs["token_logprobs"][start:start + len(tokens)]
            top = [max(entry.values()) for entry in logprobs["top_logprobs"][start:start + len(tokens)]]
            cases.append({"prompt_len": len(prompt), "ref_logprobs": ref, "top_logprobs": top})
            print(f"teacher-forced case of {len(prompt)} prompt tokens: {len(ref)} positions", flush=True)
        except Exception as error:  # noqa: BLE001 - recorded, the run goes on
            cases.append({"prompt_len": len(prompt), "error": f"{type(error).__name__}: {error}"})
            print(f"teacher-forced case failed: {cases[-1]['error']}", flush=True)
    with open(out, "w") as f:
        json.dump({"cases": cases}, f, indent=1)
    return 1 if any("error" in case for case in cases) else 0


if __name__ == "__main__":
    sys.exit(main())
