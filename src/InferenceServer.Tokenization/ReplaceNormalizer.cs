using System.Text;

namespace InferenceServer.Tokenization;

/// <summary>The Replace normalizer: replaces every match of a string or regex pattern with fixed content.</summary>
internal sealed class ReplaceNormalizer : TextNormalizer
{
    private readonly HfRegex _pattern;
    private readonly string _content;

    /// <summary>Creates the normalizer.</summary>
    /// <param name="pattern">What to replace (a string pattern is compiled as an escaped regex, as Hugging Face does).</param>
    /// <param name="content">The replacement text.</param>
    public ReplaceNormalizer(HfRegex pattern, string content)
    {
        _pattern = pattern;
        _content = content;
    }

    /// <inheritdoc />
    public override string Normalize(string text)
    {
        var matches = new List<(int Start, int End)>();
        _pattern.FindMatches(text, matches);
        if (matches.Count == 0)
        {
            return text;
        }

        var builder = new StringBuilder(text.Length + (matches.Count * _content.Length));
        int position = 0;
        foreach ((int start, int end) in matches)
        {
            builder.Append(text, position, start - position).Append(_content);
            position = end;
        }

        builder.Append(text, position, text.Length - position);
        return builder.ToString();
    }
}
