// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text;
using InferenceServer.Tokenization;

namespace InferenceServer.OpenAi;

/// <summary>
/// How a single token reads in a logprobs report: its bytes decoded as UTF-8, or, when the token holds only part of a
/// multi-byte character, each byte written as <c>\xNN</c> (OpenAI's convention); <c>bytes</c> always has the raw bytes.
/// Token-only models (no tokenizer) show ids as <c>token_id:N</c>, as vLLM's <c>return_tokens_as_token_ids</c>.
/// </summary>
internal static class TokenText
{
    private static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>The display string of <paramref name="id"/>.</summary>
    public static string Of(HfTokenizer? tokenizer, int id)
    {
        if (tokenizer is null || !tokenizer.TryGetTokenBytes(id, out var bytes))
        {
            return "token_id:" + id.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        try
        {
            return Strict.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            var builder = new StringBuilder(bytes.Length * 4);
            foreach (var b in bytes)
            {
                builder.Append("\\x").Append(b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture));
            }

            return builder.ToString();
        }
    }

    /// <summary>The raw bytes of <paramref name="id"/> (empty for token-only models).</summary>
    public static ReadOnlySpan<byte> Bytes(HfTokenizer? tokenizer, int id)
        => tokenizer is not null && tokenizer.TryGetTokenBytes(id, out var bytes) ? bytes : [];
}
