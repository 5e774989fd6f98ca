#!/usr/bin/env python3
"""The Hugging Face reference for the Llama-1B benchmark: transformers generate() on the GPU machine.

  python3 hf_reference.py CHECKPOINT OUT.json [--batches 1,16,64,256] [--input-len 128] [--output-len 128]
                          [--ttft-lens 512,2048] [--vocab 128000] [--seed 0] [--budget-s 300]

Loads CHECKPOINT in bf16 on cuda with attn_implementation="sdpa" and measures:
- greedy: the first 32 tokens of the two fixed prompts of prompts.py (a plain argmax loop over the dynamic cache,
  no logits processors, as the server's ignore_eos greedy decoding), in bf16, and at the end again in fp32 (the
  bf16 weights widened exactly), so that the server's fp16 tokens can be compared with both;
- TTFT at batch 1: generate(max_new_tokens=1) on random prompts of each --ttft-lens length, one warm-up, then the
  median of 3;
- throughput: at each batch B of --batches, generate() on B random --input-len prompts (greedy, dynamic cache,
  min_new_tokens = max_new_tokens = --output-len so that EOS cannot end it), one warm-up of the same shape, then one
  timed run; output tokens/s = B * output_len / seconds, timed with torch.cuda.synchronize().
The JSON is rewritten after every measurement, so a run stopped by a timeout still leaves what it measured. A
measurement that fails (out of memory, say) is recorded under "errors" and the others go on. Once --budget-s has
passed, the remaining measurements are skipped (recorded as such).
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prompts import GREEDY_TOKENS, greedy_prompts  # noqa: E402


def int_list(text):
    values = [int(item) for item in text.split(",") if item.strip()]
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of positive integers, not {text!r}")
    return values


class Run:
    """The results so far, written to the JSON file after every change."""

    def __init__(self, path, budget_s):
        self.path = path
        self.started = time.time()
        self.budget_s = budget_s
        self.data = {"env": {}, "greedy": {"tokens": GREEDY_TOKENS, "cases": []}, "ttft": [], "throughput": [],
                     "errors": [], "skipped": []}

    def over_budget(self):
        return time.time() - self.started > self.budget_s

    def error(self, what, error):
        message = f"{what}: {type(error).__name__}: {error}"
        print(f"error: {message}", flush=True)
        self.data["errors"].append(message[:2000])
        self.save()

    def save(self):
        self.data["elapsed_s"] = round(time.time() - self.started, 1)
        temporary = self.path + ".tmp"
        with open(temporary, "w") as f:
            json.dump(self.data, f, indent=1)
        os.replace(temporary, self.path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    parser.add_argument("--batches", type=int_list, default=[1, 16, 64, 256])
    parser.add_argument("--input-len", type=int, default=128)
    parser.add_argument("--output-len", type=int, default=128)
    parser.add_argument("--ttft-lens", type=int_list, default=[512, 2048])
    parser.add_argument("--vocab", type=int, default=128000, help="prompt ids are drawn from [10, vocab)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-s", type=float, default=300, help="skip what is left after this many seconds")
    args = parser.parse_args()
    if not os.path.isfile(os.path.join(args.checkpoint, "config.json")):
        raise SystemExit(f"error: {args.checkpoint} has no config.json (make it with make_checkpoint.py)")

    run = Run(args.out, args.budget_s)
    run.save()
    try:
        import torch
        import transformers
    except ImportError as error:
        run.error("import", error)
        return 1
    if not torch.cuda.is_available():
        run.error("cuda", RuntimeError("torch sees no CUDA device"))
        return 1

    device = torch.device("cuda")
    run.data["env"] = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0),
        "dtype": "bfloat16",
        "attn_implementation": "sdpa",
        "input_len": args.input_len,
        "output_len": args.output_len,
        "vocab": args.vocab,
        "seed": args.seed,
    }
    load_started = time.time()
    try:
        dtype_argument = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
        model = transformers.AutoModelForCausalLM.from_pretrained(
            args.checkpoint, attn_implementation="sdpa", **{dtype_argument: torch.bfloat16})
        model = model.to(device).eval()
    except Exception as error:  # noqa: BLE001 - report whatever stops the load
        run.error("load", error)
        return 1
    run.data["env"]["load_s"] = round(time.time() - load_started, 1)
    run.data["env"]["attn_implementation_used"] = getattr(model.config, "_attn_implementation", None)
    run.data["env"]["parameters"] = sum(p.numel() for p in model.parameters())
    eos = model.generation_config.eos_token_id
    eos = eos[0] if isinstance(eos, list) else eos
    print(f"loaded {args.checkpoint} in {run.data['env']['load_s']} s on {run.data['env']['gpu']}", flush=True)
    run.save()

    generator = torch.Generator(device="cpu").manual_seed(args.seed)

    def random_prompts(batch, length):
        return torch.randint(10, args.vocab, (batch, length), generator=generator).to(device)

    def greedy(prompt, steps):
        """Argmax decoding over the dynamic cache, nothing else: the server's greedy with ignore_eos."""
        ids = torch.tensor([prompt], device=device)
        tokens = []
        with torch.no_grad():
            out = model(input_ids=ids, use_cache=True)
            for step in range(steps):
                token = out.logits[:, -1, :].float().argmax(dim=-1)
                tokens.append(int(token.item()))
                if step + 1 < steps:
                    out = model(input_ids=token[:, None], past_key_values=out.past_key_values, use_cache=True)
        return tokens

    def generate(prompts, new_tokens, **extra):
        with torch.no_grad():
            return model.generate(
                input_ids=prompts,
                attention_mask=torch.ones_like(prompts),
                max_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=eos,
                **extra)

    # Greedy tokens in bf16.
    cases = run.data["greedy"]["cases"]
    for index, prompt in enumerate(greedy_prompts()):
        try:
            cases.append({"prompt_len": len(prompt), "bf16": greedy(prompt, GREEDY_TOKENS)})
            print(f"greedy case {index} ({len(prompt)} prompt tokens), bf16: {cases[-1]['bf16']}", flush=True)
        except Exception as error:  # noqa: BLE001
            cases.append({"prompt_len": len(prompt)})
            run.error(f"greedy case {index} bf16", error)
        run.save()

    # TTFT at batch 1: generate one token.
    for length in args.ttft_lens:
        if run.over_budget():
            run.data["skipped"].append(f"ttft {length}")
            continue
        try:
            prompts = random_prompts(1, length)
            generate(prompts, 1)
            times = []
            for _ in range(3):
                torch.cuda.synchronize()
                started = time.perf_counter()
                generate(prompts, 1)
                torch.cuda.synchronize()
                times.append((time.perf_counter() - started) * 1000)
            entry = {"input_len": length, "batch": 1, "ms": [round(t, 2) for t in times],
                     "median_ms": round(statistics.median(times), 2)}
            run.data["ttft"].append(entry)
            print(f"TTFT {length} tokens: median {entry['median_ms']} ms ({entry['ms']})", flush=True)
        except Exception as error:  # noqa: BLE001
            run.error(f"ttft {length}", error)
            torch.cuda.empty_cache()
        run.save()

    # Throughput at each batch size.
    for batch in args.batches:
        if run.over_budget():
            run.data["skipped"].append(f"throughput batch {batch}")
            print(f"skipped batch {batch}: over the {args.budget_s} s budget", flush=True)
            run.save()
            continue
        try:
            prompts = random_prompts(batch, args.input_len)
            torch.cuda.synchronize()
            started = time.perf_counter()
            warm = generate(prompts, args.output_len, min_new_tokens=args.output_len, return_dict_in_generate=True)
            torch.cuda.synchronize()
            warmup_s = time.perf_counter() - started
            cache = type(getattr(warm, "past_key_values", None)).__name__
            del warm
            torch.cuda.synchronize()
            started = time.perf_counter()
            output = generate(prompts, args.output_len, min_new_tokens=args.output_len)
            torch.cuda.synchronize()
            seconds = time.perf_counter() - started
            generated = output.shape[1] - args.input_len
            if output.shape[0] != batch or generated != args.output_len:
                raise RuntimeError(f"generate gave shape {tuple(output.shape)}, expected ({batch}, {args.input_len + args.output_len})")
            entry = {"batch": batch, "input_len": args.input_len, "output_len": args.output_len,
                     "seconds": round(seconds, 4), "warmup_s": round(warmup_s, 4), "cache": cache,
                     "output_tokens_per_s": round(batch * generated / seconds, 1),
                     "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)}
            run.data["throughput"].append(entry)
            print(f"batch {batch}: {entry['output_tokens_per_s']} output tok/s ({seconds:.2f} s, {cache})", flush=True)
            del output
        except Exception as error:  # noqa: BLE001
            run.error(f"throughput batch {batch}", error)
        torch.cuda.empty_cache()
        run.save()

    # Greedy tokens in fp32: the same weights widened exactly, the closest to what the fp16 graph approximates.
    try:
        model = model.float()
        for index, prompt in enumerate(greedy_prompts()):
            if index < len(cases):
                cases[index]["fp32"] = greedy(prompt, GREEDY_TOKENS)
                print(f"greedy case {index}, fp32: {cases[index]['fp32']}", flush=True)
    except Exception as error:  # noqa: BLE001
        run.error("greedy fp32", error)
    run.save()
    return 1 if run.data["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
