namespace InferenceServer.Tokenization;

/// <summary>The Strip normalizer: removes leading and/or trailing whitespace (Unicode White_Space).</summary>
internal sealed class StripNormalizer : TextNormalizer
{
    private readonly bool _left;
    private readonly bool _right;

    /// <summary>Creates the normalizer.</summary>
    /// <param name="left">Whether leading whitespace is removed.</param>
    /// <param name="right">Whether trailing whitespace is removed.</param>
    public StripNormalizer(bool left, bool right)
    {
        _left = left;
        _right = right;
    }

    /// <inheritdoc />
    public override string Normalize(string text)
    {
        int start = 0;
        int end = text.Length;
        while (_left && start < end && char.IsWhiteSpace(text[start]))
        {
            start++;
        }

        while (_right && end > start && char.IsWhiteSpace(text[end - 1]))
        {
            end--;
        }

        return start == 0 && end == text.Length ? text : text[start..end];
    }
}
