namespace InferenceServer.Tokenization;

/// <summary>
/// Thrown when a Hugging Face <c>tokenizer.json</c> cannot be loaded: the file is missing or is not valid JSON, a
/// component is malformed, or it declares a component (normalizer, pre-tokenizer, model, post-processor, decoder)
/// that this loader does not implement. The message names the file and the offending component.
/// </summary>
public sealed class TokenizerLoadException : Exception
{
    /// <summary>Creates the exception with a message that names the file and the component.</summary>
    /// <param name="message">What failed, starting with the file name.</param>
    public TokenizerLoadException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the error that caused it.</summary>
    /// <param name="message">What failed, starting with the file name.</param>
    /// <param name="innerException">The underlying error (I/O, JSON, or the tokenizer library).</param>
    public TokenizerLoadException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
