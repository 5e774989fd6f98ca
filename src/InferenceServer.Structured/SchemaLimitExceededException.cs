// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Structured;

/// <summary>
/// A JSON schema exceeds one of the <see cref="SchemaLimits"/> (its size, nesting, compiled size, union expansion or
/// compile time). The server refuses the request with a 400; the message names the limit and its value.
/// </summary>
public sealed class SchemaLimitExceededException : Exception
{
    /// <summary>Creates the exception for the limit <paramref name="limit"/> of <paramref name="value"/>.</summary>
    /// <param name="limit">The name of the limit, as in <see cref="SchemaLimits"/> (such as <c>MaxNesting</c>).</param>
    /// <param name="value">The limit's value, as text (such as <c>64</c>).</param>
    /// <param name="detail">What exceeded it, and where.</param>
    public SchemaLimitExceededException(string limit, string value, string detail)
        : base($"The JSON schema exceeds the structured-output limit {limit} ({value}): {detail}")
    {
        Limit = limit;
    }

    /// <summary>The name of the exceeded limit, as in <see cref="SchemaLimits"/>.</summary>
    public string Limit { get; }
}
