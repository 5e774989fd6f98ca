namespace InferenceServer.Tokenization;

/// <summary>The Sequence pre-tokenizer: each step splits every piece the previous step produced.</summary>
internal sealed class SequencePreTokenizer : PreTokenizerStep
{
    private readonly PreTokenizerStep[] _steps;

    /// <summary>Creates the pre-tokenizer.</summary>
    /// <param name="steps">The pre-tokenizers, in the order they run.</param>
    public SequencePreTokenizer(PreTokenizerStep[] steps)
    {
        _steps = steps;
    }

    /// <inheritdoc />
    public override void PreTokenize(string piece, List<string> output)
    {
        var current = new List<string> { piece };
        var next = new List<string>();
        foreach (PreTokenizerStep step in _steps)
        {
            next.Clear();
            foreach (string part in current)
            {
                step.PreTokenize(part, next);
            }

            (current, next) = (next, current);
        }

        output.AddRange(current);
    }
}
