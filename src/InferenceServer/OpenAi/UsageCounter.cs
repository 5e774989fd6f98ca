// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Engine.Requests;

namespace InferenceServer.OpenAi;

/// <summary>Token counts over a response's choices, as OpenAI reports them in <c>usage</c>.</summary>
internal sealed class UsageCounter
{
    private readonly HashSet<int> _seenPrompts = [];

    /// <summary>Prompt tokens, counted once per prompt (not per choice).</summary>
    public int PromptTokens { get; private set; }

    /// <summary>Generated tokens over all choices.</summary>
    public int CompletionTokens { get; private set; }

    /// <summary>Prompt tokens served from the prefix cache.</summary>
    public int CachedTokens { get; private set; }

    /// <summary>Adds the final update of the choice with index <paramref name="promptIndex"/>'s prompt.</summary>
    public void Add(GenerationUpdate final, int promptIndex = -1)
    {
        if (promptIndex < 0 || _seenPrompts.Add(promptIndex))
        {
            PromptTokens += final.PromptTokens;
            CachedTokens += final.CachedPromptTokens;
        }

        CompletionTokens += final.CompletionTokens;
    }
}
