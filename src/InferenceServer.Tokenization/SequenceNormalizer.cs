namespace InferenceServer.Tokenization;

/// <summary>The Sequence normalizer: applies its normalizers in order.</summary>
internal sealed class SequenceNormalizer : TextNormalizer
{
    private readonly TextNormalizer[] _normalizers;

    /// <summary>Creates the normalizer.</summary>
    /// <param name="normalizers">The normalizers, in the order they run.</param>
    public SequenceNormalizer(TextNormalizer[] normalizers)
    {
        _normalizers = normalizers;
    }

    /// <inheritdoc />
    public override string Normalize(string text)
    {
        foreach (TextNormalizer normalizer in _normalizers)
        {
            text = normalizer.Normalize(text);
        }

        return text;
    }
}
