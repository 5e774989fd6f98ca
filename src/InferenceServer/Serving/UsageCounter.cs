// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Engine.Diagnostics;
using InferenceServer.Engine.Requests;

namespace InferenceServer.Serving;

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

    /// <summary>The longest queue time over the choices.</summary>
    public TimeSpan QueueTime { get; private set; }

    /// <summary>The earliest first token over the choices; null when none was generated.</summary>
    public TimeSpan? TimeToFirstToken { get; private set; }

    /// <summary>The choices' finish reasons in vLLM's words (<c>stop</c>, <c>length</c>, <c>abort</c>, <c>error</c>), comma-separated in choice order.</summary>
    public string FinishReasons { get; private set; } = string.Empty;

    /// <summary>Adds the final update of the choice with index <paramref name="promptIndex"/>'s prompt.</summary>
    public void Add(GenerationUpdate final, int promptIndex = -1)
    {
        QueueTime = final.QueueTime > QueueTime ? final.QueueTime : QueueTime;
        if (final.TimeToFirstToken is { } ttft && (TimeToFirstToken is null || ttft < TimeToFirstToken))
        {
            TimeToFirstToken = ttft;
        }

        var reason = InferenceMetrics.FinishedReasonLabel(final.Finish);
        FinishReasons = FinishReasons.Length == 0 ? reason : FinishReasons + "," + reason;

        if (promptIndex < 0 || _seenPrompts.Add(promptIndex))
        {
            PromptTokens += final.PromptTokens;
            CachedTokens += final.CachedPromptTokens;
        }

        CompletionTokens += final.CompletionTokens;
    }
}
