namespace InferenceServer.Tokenization;

/// <summary>The Prepend normalizer: puts a fixed string before every non-empty piece.</summary>
internal sealed class PrependNormalizer : TextNormalizer
{
    private readonly string _prefix;

    /// <summary>Creates the normalizer.</summary>
    /// <param name="prefix">The string to prepend.</param>
    public PrependNormalizer(string prefix)
    {
        _prefix = prefix;
    }

    /// <inheritdoc />
    public override string Normalize(string text) => text.Length == 0 ? text : _prefix + text;
}
