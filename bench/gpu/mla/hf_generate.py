#!/usr/bin/env python3
"""transformers generate() output tokens/s on the MLA benchmark checkpoint, the reference side of run-mla.sh.

  python3 hf_generate.py CHECKPOINT OUT.json [--batches 1,64,256] [--input-len 128] [--output-len 128] [--budget-s 120]

As llama1b/hf_reference.py measures throughput (bf16, sdpa, dynamic cache, greedy, min_new_tokens = max_new_tokens,
one warm-up of the same shape then one timed run, torch.cuda.synchronize()), with prompt ids drawn below the
checkpoint's own vocabulary (hf_reference.py's fixed greedy prompts assume Llama's 128000, which would index past
V2-Lite's 102400 and poison the CUDA context). The JSON ({"throughput": [{"batch", "output_tokens_per_s", ...}],
"errors", "skipped"}) is rewritten after every measurement.
"""
import argparse
import json
import sys
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    parser.add_argument("--batches", default="1,64,256")
    parser.add_argument("--input-len", type=int, default=128)
    parser.add_argument("--output-len", type=int, default=128)
    parser.add_argument("--budget-s", type=float, default=120)
    args = parser.parse_args()
    import torch
    import transformers

    started = time.time()
    data = {"throughput": [], "errors": [], "skipped": [], "transformers": transformers.__version__, "torch": torch.__version__}

    def save():
        data["elapsed_s"] = round(time.time() - started, 1)
        with open(args.out, "w") as f:
            json.dump(data, f, indent=1)

    dtype_argument = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    model = transformers.AutoModelForCausalLM.from_pretrained(
        args.checkpoint, attn_implementation="sdpa", **{dtype_argument: torch.bfloat16}).to("cuda").eval()
    vocab = model.config.vocab_size
    eos = model.generation_config.eos_token_id
    eos = eos[0] if isinstance(eos, list) else eos
    data["load_s"] = round(time.time() - started, 1)
    save()
    generator = torch.Generator(device="cpu").manual_seed(0)
    for batch in [int(b) for b in args.batches.split(",") if b]:
        if time.time() - started > args.budget_s:
            data["skipped"].append(f"batch {batch}: budget")
            save()
            continue
        try:
            prompts = torch.randint(10, vocab, (batch, args.input_len), generator=generator).to("cuda")
            options = dict(attention_mask=torch.ones_like(prompts), max_new_tokens=args.output_len, min_new_tokens=args.output_len,
                           do_sample=False, pad_token_id=eos)
            with torch.no_grad():
                model.generate(input_ids=prompts, **options)
                torch.cuda.synchronize()
                timed = time.perf_counter()
                output = model.generate(input_ids=prompts, **options)
                torch.cuda.synchronize()
            seconds = time.perf_counter() - timed
            generated = output.shape[1] - args.input_len
            entry = {"batch": batch, "input_len": args.input_len, "output_len": generated, "seconds": round(seconds, 3),
                     "output_tokens_per_s": round(batch * generated / seconds, 1),
                     "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)}
            data["throughput"].append(entry)
            print(f"transformers batch {batch}: {entry['output_tokens_per_s']} output tok/s ({seconds:.2f} s)", flush=True)
        except Exception as error:  # noqa: BLE001 - record and go on
            data["errors"].append(f"batch {batch}: {type(error).__name__}: {str(error)[:1000]}")
            print(f"error: batch {batch}: {error}", flush=True)
        save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
