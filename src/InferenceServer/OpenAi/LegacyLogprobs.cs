// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;
using InferenceServer.Engine.Requests;
using InferenceServer.Tokenization;

namespace InferenceServer.OpenAi;

/// <summary>
/// OpenAI's completions logprobs object: parallel arrays <c>tokens</c>, <c>token_logprobs</c>, <c>top_logprobs</c>
/// (a token-to-logprob map per position) and <c>text_offset</c> (each token's start in the choice's text).
/// A prompt's first token has null logprob and null alternatives.
/// </summary>
internal sealed class LegacyLogprobs
{
    private readonly List<(string Token, float? Logprob, IReadOnlyList<(string Token, float Logprob)>? Top)> _entries = [];

    /// <summary>Adds the prompt's positions (echo); <paramref name="reports"/> may be null when none came back.</summary>
    public void AddPrompt(IReadOnlyList<int> prompt, IReadOnlyList<TokenLogprobs?>? reports, HfTokenizer? tokenizer)
    {
        for (var i = 0; i < prompt.Count; i++)
        {
            var report = reports is not null && i < reports.Count ? reports[i] : null;
            _entries.Add((TokenText.Of(tokenizer, prompt[i]), report?.Logprob, report is null ? null : Top(report, tokenizer)));
        }
    }

    /// <summary>Adds one generated token.</summary>
    public void Add(TokenLogprobs report, HfTokenizer? tokenizer)
        => _entries.Add((TokenText.Of(tokenizer, report.TokenId), report.Logprob, Top(report, tokenizer)));

    /// <summary>Writes <c>"logprobs": {...}</c> with offsets from <paramref name="offset"/>; returns the offset after the last token.</summary>
    public int Write(Utf8JsonWriter writer, int offset)
    {
        writer.WriteStartObject("logprobs");
        writer.WriteStartArray("tokens");
        foreach (var entry in _entries)
        {
            writer.WriteStringValue(entry.Token);
        }

        writer.WriteEndArray();
        writer.WriteStartArray("token_logprobs");
        foreach (var entry in _entries)
        {
            if (entry.Logprob is { } logprob)
            {
                writer.WriteNumberValue(logprob);
            }
            else
            {
                writer.WriteNullValue();
            }
        }

        writer.WriteEndArray();
        writer.WriteStartArray("top_logprobs");
        foreach (var entry in _entries)
        {
            if (entry.Top is { } top)
            {
                writer.WriteStartObject();
                foreach (var (token, logprob) in top)
                {
                    writer.WriteNumber(token, logprob);
                }

                writer.WriteEndObject();
            }
            else
            {
                writer.WriteNullValue();
            }
        }

        writer.WriteEndArray();
        writer.WriteStartArray("text_offset");
        foreach (var entry in _entries)
        {
            writer.WriteNumberValue(offset);
            offset += entry.Token.Length;
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
        return offset;
    }

    private static List<(string, float)> Top(TokenLogprobs report, HfTokenizer? tokenizer)
    {
        var top = new List<(string, float)>(report.Top.Count + 1);
        var hasChosen = false;
        foreach (var candidate in report.Top)
        {
            top.Add((TokenText.Of(tokenizer, candidate.TokenId), candidate.Logprob));
            hasChosen |= candidate.TokenId == report.TokenId;
        }

        // As OpenAI and vLLM: the sampled token is always among the alternatives.
        if (!hasChosen)
        {
            top.Add((TokenText.Of(tokenizer, report.TokenId), report.Logprob));
        }

        return top;
    }
}
