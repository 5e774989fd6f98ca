"""The fixed prompts whose greedy tokens the server (fp16) and Hugging Face (bf16, fp32) are compared on.

Token ids only (the checkpoint has no tokenizer), drawn with Python's own generator so that the reference script
and the server check agree without numpy or torch.
"""
import random

GREEDY_TOKENS = 32
VOCAB = 128000
FIRST_ID = 10


def greedy_prompts():
    """Two prompts: 24 and 200 token ids in [10, 128000), the same on every run."""
    generator = random.Random(20261128)
    return [[generator.randrange(FIRST_ID, VOCAB) for _ in range(length)] for length in (24, 200)]


def agreement(expected, actual):
    """How two greedy continuations agree: the common prefix length and the share of equal positions."""
    common = 0
    while common < min(len(expected), len(actual)) and expected[common] == actual[common]:
        common += 1
    equal = sum(1 for a, b in zip(expected, actual) if a == b)
    return {"prefix": common, "equal": equal, "of": len(expected)}
