// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Structured;

/// <summary>
/// A JSON schema uses a keyword (or a form of one) that constrained decoding does not enforce. The server refuses the
/// request rather than generate output that might not match the schema; the message names the keyword and where it is.
/// </summary>
public sealed class SchemaNotSupportedException : Exception
{
    /// <summary>Creates the exception for <paramref name="keyword"/> at <paramref name="schemaPath"/>.</summary>
    /// <param name="keyword">The unsupported keyword, such as <c>pattern</c>.</param>
    /// <param name="schemaPath">Where the keyword is, as a JSON pointer fragment such as <c>#/properties/zip</c>.</param>
    /// <param name="detail">Why it is refused, or what to use instead.</param>
    public SchemaNotSupportedException(string keyword, string schemaPath, string detail)
        : base($"JSON schema keyword '{keyword}' at '{schemaPath}' is not supported: {detail}")
    {
        Keyword = keyword;
        SchemaPath = schemaPath;
    }

    /// <summary>The unsupported keyword.</summary>
    internal string Keyword { get; }

    /// <summary>Where the keyword is, as a JSON pointer fragment (<c>#</c> is the schema's root).</summary>
    internal string SchemaPath { get; }
}
