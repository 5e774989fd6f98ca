namespace InferenceServer.Tokenization;

/// <summary>
/// What the tokenizer.json <c>post_processor</c> adds around a single sequence when special tokens are requested
/// (TemplateProcessing's <c>single</c> template, BertProcessing's and RobertaProcessing's cls/sep).
/// </summary>
internal sealed class SpecialTokenTemplate
{
    /// <summary>The template that adds nothing (no post-processor, or ByteLevel).</summary>
    public static readonly SpecialTokenTemplate None = new([], []);

    /// <summary>Creates the template.</summary>
    /// <param name="prefix">Ids placed before the sequence.</param>
    /// <param name="suffix">Ids placed after the sequence.</param>
    public SpecialTokenTemplate(int[] prefix, int[] suffix)
    {
        Prefix = prefix;
        Suffix = suffix;
    }

    /// <summary>Ids placed before the sequence.</summary>
    public int[] Prefix { get; }

    /// <summary>Ids placed after the sequence.</summary>
    public int[] Suffix { get; }

    /// <summary>Returns this template applied inside <paramref name="outer"/> (a Sequence of post-processors).</summary>
    /// <param name="outer">The post-processor that runs after this one.</param>
    public SpecialTokenTemplate Then(SpecialTokenTemplate outer)
        => new([.. outer.Prefix, .. Prefix], [.. Suffix, .. outer.Suffix]);
}
