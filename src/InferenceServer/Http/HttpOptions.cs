// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Http;

/// <summary>
/// API keys and CORS, from <c>--api-key</c> and the <c>--allowed-*</c> options (vLLM's names and defaults); bound once at
/// start by the composition root (the options binder) and immutable afterwards.
/// </summary>
internal sealed class HttpOptions
{
    /// <summary>Keys accepted on <c>/v1/*</c>; empty (the default) leaves the API open.</summary>
    public IReadOnlyList<string> ApiKeys { get; init; } = [];

    /// <summary>CORS origins; default <c>*</c> (any), as vLLM.</summary>
    public IReadOnlyList<string> AllowedOrigins { get; init; } = ["*"];

    /// <summary>CORS methods; default <c>*</c>.</summary>
    public IReadOnlyList<string> AllowedMethods { get; init; } = ["*"];

    /// <summary>CORS request headers; default <c>*</c>.</summary>
    public IReadOnlyList<string> AllowedHeaders { get; init; } = ["*"];

    /// <summary>Whether CORS responses allow credentials; default false.</summary>
    public bool AllowCredentials { get; init; }
}
