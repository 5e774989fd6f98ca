// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating;

/// <summary>
/// Thrown when a chat template cannot be parsed or rendered. <see cref="Kind"/> says why; <see cref="Line"/> is the
/// 1-based template line where that is known. For <see cref="ChatTemplateErrorKind.RaisedByTemplate"/> the message is
/// exactly what the template passed to <c>raise_exception</c>, so it can be returned to the client as is.
/// </summary>
public sealed class ChatTemplateException : Exception
{
    /// <summary>Creates a runtime error with a message and no line.</summary>
    /// <param name="message">What went wrong.</param>
    public ChatTemplateException(string message)
        : this(message, ChatTemplateErrorKind.Runtime, null, null)
    {
    }

    /// <summary>Creates a runtime error with a message and the error that caused it.</summary>
    /// <param name="message">What went wrong.</param>
    /// <param name="innerException">The underlying error.</param>
    public ChatTemplateException(string message, Exception innerException)
        : this(message, ChatTemplateErrorKind.Runtime, null, innerException)
    {
    }

    /// <summary>Creates an error of a given kind, with the template line where it happened if known.</summary>
    /// <param name="message">What went wrong; the line is appended to <see cref="Exception.Message"/> when given.</param>
    /// <param name="kind">Why it went wrong.</param>
    /// <param name="line">The 1-based template line, or null.</param>
    /// <param name="innerException">The underlying error, or null.</param>
    public ChatTemplateException(string message, ChatTemplateErrorKind kind, int? line, Exception? innerException = null)
        : base(Format(message, kind, line), innerException)
    {
        Detail = message;
        Kind = kind;
        Line = line;
    }

    /// <summary>Why the template failed.</summary>
    public ChatTemplateErrorKind Kind { get; }

    /// <summary>The 1-based template line of the failure, or null when unknown.</summary>
    public int? Line { get; }

    /// <summary>The message without the line decoration (for <see cref="ChatTemplateErrorKind.RaisedByTemplate"/>, the template's own text).</summary>
    public string Detail { get; }

    internal static ChatTemplateException Syntax(string message, int line) => new(message, ChatTemplateErrorKind.Syntax, line);

    internal static ChatTemplateException Runtime(string message) => new(message, ChatTemplateErrorKind.Runtime, null);

    internal static ChatTemplateException Limit(string message) => new(message, ChatTemplateErrorKind.LimitExceeded, null);

    /// <summary>The same error with <paramref name="line"/> filled in (when it has none yet).</summary>
    internal ChatTemplateException WithLine(int line)
        => Line is null && Kind != ChatTemplateErrorKind.RaisedByTemplate ? new ChatTemplateException(Detail, Kind, line, InnerException) : this;

    private static string Format(string message, ChatTemplateErrorKind kind, int? line) => (kind, line) switch
    {
        (ChatTemplateErrorKind.Syntax, int l) => $"Template syntax error at line {l}: {message}",
        (ChatTemplateErrorKind.RaisedByTemplate, _) => message,
        (_, int l) => $"{message} (template line {l})",
        _ => message,
    };
}
