// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text;
using InferenceServer.Engine.Requests;

namespace InferenceServer.OpenAi;

/// <summary>One choice of a non-streamed response, accumulated from its updates.</summary>
internal sealed class ChoiceResult
{
    private readonly StringBuilder _text = new();

    /// <summary>Generated token ids.</summary>
    public List<int> TokenIds { get; } = [];

    /// <summary>Each generated token's logprob report, in order (when requested).</summary>
    public List<TokenLogprobs> Logprobs { get; } = [];

    /// <summary>The prompt's logprob reports (echo with logprobs), entry 0 null.</summary>
    public IReadOnlyList<TokenLogprobs?>? PromptLogprobs { get; private set; }

    /// <summary>The final update (finish reason and counts).</summary>
    public GenerationUpdate Final { get; private set; }

    /// <summary>The generated text.</summary>
    public string Text => _text.ToString();

    /// <summary>Adds one update.</summary>
    public void Add(GenerationUpdate update)
    {
        _text.Append(update.Text);
        if (update.TokenId >= 0)
        {
            TokenIds.Add(update.TokenId);
        }

        if (update.Logprobs is { } logprobs)
        {
            Logprobs.Add(logprobs);
        }

        if (update.PromptLogprobs is { } prompt)
        {
            PromptLogprobs = prompt;
        }

        if (update.IsFinal)
        {
            Final = update;
        }
    }
}
