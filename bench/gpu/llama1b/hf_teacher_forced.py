#!/usr/bin/env python3
"""The fp32 reference of the teacher-forced tolerance check (issue 16): transformers on the GPU machine.

  python3 hf_teacher_forced.py CHECKPOINT OUT.json

For each fixed prompt of prompts.py: the fp32 greedy continuation (GREEDY_TOKENS argmax steps over the dynamic cache,
the weights widened exactly from the checkpoint's bf16), then ONE forward pass over prompt + continuation, whose
log-softmax gives, at each continuation position i, the logprob of the reference token (the fp32 argmax) and the gap
between the two largest logits (how close to a tie the reference itself is there). teacher_forced.py sends the same
prompt + continuation to a server (echo with logprobs) and tolerance_report.py compares.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prompts import GREEDY_TOKENS, greedy_prompts  # noqa: E402


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    checkpoint, out = sys.argv[1:]
    import torch
    import transformers

    started = time.time()
    dtype_argument = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    model = transformers.AutoModelForCausalLM.from_pretrained(
        checkpoint, attn_implementation="eager", **{dtype_argument: torch.float32}).to("cuda").eval()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cases = []
    with torch.no_grad():
        for prompt in greedy_prompts():
            ids = torch.tensor([prompt], device="cuda")
            out_step = model(input_ids=ids, use_cache=True)
            tokens = []
            for step in range(GREEDY_TOKENS):
                token = out_step.logits[:, -1, :].float().argmax(dim=-1)
                tokens.append(int(token.item()))
                if step + 1 < GREEDY_TOKENS:
                    out_step = model(input_ids=token[:, None], past_key_values=out_step.past_key_values, use_cache=True)
            full = torch.tensor([prompt + tokens], device="cuda")
            logits = model(input_ids=full).logits[0].float()
            # Position p predicts token p + 1: the continuation's tokens are predicted by positions len(prompt)-1 ...
            rows = logits[len(prompt) - 1:len(prompt) - 1 + GREEDY_TOKENS]
            logprobs = torch.log_softmax(rows, dim=-1)
            top2 = torch.topk(rows, 2, dim=-1).values
            reference = torch.tensor(tokens, device="cuda")
            cases.append({
                "prompt": prompt,
                "tokens": tokens,
                "ref_logprobs": logprobs.gather(1, reference[:, None])[:, 0].tolist(),
                "top2_gap": (top2[:, 0] - top2[:, 1]).tolist(),
                "argmax_is_ref": (rows.argmax(dim=-1) == reference).tolist(),
            })
            print(f"fp32 reference: prompt of {len(prompt)} tokens -> {tokens}", flush=True)
    with open(out, "w") as f:
        json.dump({"tokens": GREEDY_TOKENS, "elapsed_s": round(time.time() - started, 1),
                   "gpu": torch.cuda.get_device_name(0), "cases": cases}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
