#!/usr/bin/env python3
"""Teacher-forced logprobs from a server (issue 16's tolerance check).

  python3 teacher_forced.py URL HF.json OUT.json

For each fixed prompt and each position i of its fp32 reference continuation (hf_teacher_forced.py's HF.json), sends
prompt + the reference's first i tokens with max_tokens=1 and logprobs=5, and keeps the server's logprob of the
reference token there (the 5th logprob if it is not in the top 5) and its own top logprob. Every position is conditioned on the same reference tokens, so a near tie that one
path breaks the other way does not derail the rest (as it does in a free-running greedy comparison).
"""
import json
import sys
import urllib.error
import urllib.request


def next_logprobs(url, ids):
    """The top-5 logprobs of the token after ids, keyed by token id (the checkpoint is token-only: keys are token_id:N)."""
    body = {"prompt": ids, "max_tokens": 1, "temperature": 0, "ignore_eos": True, "logprobs": 5}
    request = urllib.request.Request(url.rstrip("/") + "/v1/completions", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            top = json.load(response)["choices"][0]["logprobs"]["top_logprobs"][0]
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"HTTP {error.code}: {error.read()[:500]!r}") from error
    return {int(key.split(":", 1)[1]): value for key, value in top.items()}


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
            ref, top = [], []
            for i, token in enumerate(tokens):
                # Position i conditioned on the reference's own first i tokens (prefix-cached after the first).
                logprobs = next_logprobs(url, prompt + tokens[:i])
                best = max(logprobs.values())
                # A reference token outside the top 5 is recorded at the 5th logprob (a lower bound on the error).
                ref.append(logprobs.get(token, min(logprobs.values())))
                top.append(best)
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
