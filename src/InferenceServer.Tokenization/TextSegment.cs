namespace InferenceServer.Tokenization;

/// <summary>A range of the input text: either an added token that matched there, or text still to be tokenized.</summary>
/// <param name="Start">The start index (UTF-16).</param>
/// <param name="End">The end index (exclusive).</param>
/// <param name="Token">The added token, or null for ordinary text.</param>
internal readonly record struct TextSegment(int Start, int End, AddedToken? Token);
