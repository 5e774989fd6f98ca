namespace InferenceServer.Tokenization;

/// <summary>One tokenizer.json <c>pre_tokenizer</c>: splits (and possibly rewrites) a normalized piece into words for the model.</summary>
internal abstract class PreTokenizerStep
{
    /// <summary>Appends the non-empty words that <paramref name="piece"/> splits into.</summary>
    /// <param name="piece">A non-empty normalized piece of text.</param>
    /// <param name="output">Receives the words, in order.</param>
    public abstract void PreTokenize(string piece, List<string> output);
}
