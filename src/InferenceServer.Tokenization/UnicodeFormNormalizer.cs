using System.Text;

namespace InferenceServer.Tokenization;

/// <summary>The NFC, NFD, NFKC and NFKD normalizers.</summary>
internal sealed class UnicodeFormNormalizer : TextNormalizer
{
    private readonly NormalizationForm _form;

    /// <summary>Creates the normalizer for one normalization form.</summary>
    /// <param name="form">The Unicode normalization form to apply.</param>
    public UnicodeFormNormalizer(NormalizationForm form)
    {
        _form = form;
    }

    /// <inheritdoc />
    public override string Normalize(string text) => UnicodeNormalization.Normalize(text, _form);
}
