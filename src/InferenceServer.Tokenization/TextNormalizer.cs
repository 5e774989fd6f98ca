namespace InferenceServer.Tokenization;

/// <summary>One tokenizer.json <c>normalizer</c>: rewrites a piece of input text before pre-tokenization.</summary>
internal abstract class TextNormalizer
{
    /// <summary>Returns the normalized form of <paramref name="text"/> (the same instance when nothing changes).</summary>
    /// <param name="text">A piece of input text between added tokens.</param>
    public abstract string Normalize(string text);
}
