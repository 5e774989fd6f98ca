// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal;

/// <summary>
/// Jinja2's default <c>Undefined</c>: a missing variable, attribute or item. It prints as empty, is falsy, iterates
/// as empty and has length 0; using it in arithmetic, comparison, attribute or item access, or calling it raises
/// with <see cref="Message"/>, as Jinja2 does.
/// </summary>
internal sealed class Undefined
{
    /// <summary>The undefined value with no name (the result of <c>x if false</c> with no else).</summary>
    public static readonly Undefined Anonymous = new("value is undefined");

    /// <summary>Creates an undefined value whose use raises <paramref name="message"/>.</summary>
    public Undefined(string message, string errorType = "UndefinedError")
    {
        Message = message;
        ErrorType = errorType;
    }

    /// <summary>The Python exception type raised on use (<c>UndefinedError</c>, or <c>SecurityError</c> for refused methods).</summary>
    public string ErrorType { get; }

    /// <summary>The error raised when the value is used where Jinja2 raises (e.g. <c>'foo' is undefined</c>).</summary>
    public string Message { get; }

    /// <summary>The undefined value for a missing variable.</summary>
    public static Undefined ForName(string name) => new($"'{name}' is undefined");

    /// <summary>The undefined value for a missing attribute or key of <paramref name="owner"/>.</summary>
    public static Undefined ForAttribute(object? owner, object? key)
    {
        string type = owner switch
        {
            null => "None",
            Namespace => "jinja2.utils.Namespace object",
            LoopContext => "jinja2.runtime.LoopContext object",
            Macro => "jinja2.runtime.Macro object",
            _ => PyFormat.TypeName(owner) + " object",
        };
        return new(key is string
            ? $"'{type}' has no attribute {PyFormat.Repr(key)}"
            : $"{type} has no element {PyFormat.Repr(key)}");
    }

    /// <summary>The error to raise when this value is used.</summary>
    public ChatTemplateException Fail() => ChatTemplateException.Runtime(ErrorType + ": " + Message);
}
