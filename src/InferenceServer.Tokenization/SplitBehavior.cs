namespace InferenceServer.Tokenization;

/// <summary>What a splitting pre-tokenizer does with the delimiters it finds (Hugging Face's SplitDelimiterBehavior).</summary>
internal enum SplitBehavior
{
    /// <summary>Delimiters are dropped.</summary>
    Removed,

    /// <summary>Every delimiter and every gap between them is its own piece.</summary>
    Isolated,

    /// <summary>A delimiter joins the piece before it.</summary>
    MergedWithPrevious,

    /// <summary>A delimiter joins the piece after it.</summary>
    MergedWithNext,

    /// <summary>Consecutive delimiters form one piece.</summary>
    Contiguous,
}
