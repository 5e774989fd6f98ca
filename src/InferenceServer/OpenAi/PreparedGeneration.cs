// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Engine.Requests;

namespace InferenceServer.OpenAi;

/// <summary>What an endpoint makes of a valid request body for <see cref="GenerationRunner.ServeAsync"/>.</summary>
/// <param name="Prompts">Prompt token ids; each gets <see cref="GenerationSettings.N"/> choices.</param>
/// <param name="Writer">Writes the response in the endpoint's shape.</param>
/// <param name="Constraints">Creates each choice's output constraint, or null for unconstrained output.</param>
internal readonly record struct PreparedGeneration(IReadOnlyList<IReadOnlyList<int>> Prompts, IResponseWriter Writer, Func<ITokenConstraint>? Constraints);
