// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.GpuTests;

/// <summary>One reference.json case: what transformers generated greedily in fp32, and how sure it was at each step.</summary>
/// <param name="Prompt">Prompt token ids.</param>
/// <param name="Greedy">The greedy continuation.</param>
/// <param name="Top2Margin">Per generated token: the gap between the best and second-best logit.</param>
/// <param name="FirstStepLogits">The logits after the prompt.</param>
internal sealed record ReferenceCase(int[] Prompt, int[] Greedy, float[] Top2Margin, float[] FirstStepLogits);
