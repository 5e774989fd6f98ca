namespace InferenceServer.Tokenization;

/// <summary>The Split pre-tokenizer: splits on a String or Regex pattern with a delimiter behavior, optionally inverted.</summary>
internal sealed class SplitPreTokenizer : PreTokenizerStep
{
    private readonly HfRegex _pattern;
    private readonly SplitBehavior _behavior;
    private readonly bool _invert;

    /// <summary>Creates the pre-tokenizer.</summary>
    /// <param name="pattern">The delimiter pattern.</param>
    /// <param name="behavior">What happens to the delimiters.</param>
    /// <param name="invert">Whether the pattern describes the pieces rather than the delimiters.</param>
    public SplitPreTokenizer(HfRegex pattern, SplitBehavior behavior, bool invert)
    {
        _pattern = pattern;
        _behavior = behavior;
        _invert = invert;
    }

    /// <inheritdoc />
    public override void PreTokenize(string piece, List<string> output)
    {
        var matches = new List<(int Start, int End)>();
        _pattern.FindMatches(piece, matches);
        var cover = new List<(int Start, int End, bool IsMatch)>((matches.Count * 2) + 1);
        DelimiterSplitter.CoverWithMatches(piece.Length, matches, cover);
        DelimiterSplitter.Split(piece, cover, _behavior, _invert, output);
    }
}
