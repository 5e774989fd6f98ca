namespace InferenceServer.Tokenization.Tests;

/// <summary>One vectors.json case: Hugging Face's encode(text, add_special_tokens=False) and decode(ids).</summary>
internal sealed record VectorCase(string Text, int[] Ids, string Decoded);
