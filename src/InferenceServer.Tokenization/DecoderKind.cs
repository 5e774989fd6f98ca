namespace InferenceServer.Tokenization;

/// <summary>How token strings turn back into text, as the tokenizer.json <c>decoder</c> declares.</summary>
internal enum DecoderKind
{
    /// <summary>The ByteLevel decoder: each token's characters map back to bytes, the bytes are decoded as UTF-8.</summary>
    ByteLevel,

    /// <summary>No decoder: Hugging Face joins the token strings with single spaces.</summary>
    JoinWithSpaces,
}
