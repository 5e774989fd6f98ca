// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Serving;

/// <summary>Per-request limits the HTTP API enforces before and while the engine works.</summary>
internal sealed class ServingLimits
{
    /// <summary>Default <see cref="MaxRequestTimeout"/>: 600 seconds.</summary>
    public static readonly TimeSpan DefaultMaxRequestTimeout = TimeSpan.FromSeconds(600);

    /// <summary>Default <see cref="MaxRequestBodySize"/>: 4 MiB.</summary>
    public const long DefaultMaxRequestBodySize = 4L * 1024 * 1024;

    /// <summary>The longest timeout accepted anywhere (a day), so that every deadline fits a timer.</summary>
    public const double LongestTimeoutSeconds = 86_400;

    /// <summary>The shortest per-request <c>timeout</c> (field or header) in seconds: 1 ms; less would expire before the request is read.</summary>
    public const double ShortestTimeoutSeconds = 0.001;

    /// <summary>
    /// <c>--max-request-timeout</c>: the longest a generation request may take from submission; a request's
    /// <c>timeout</c> field or <c>X-Request-Timeout</c> header may only shorten it. Default 600 seconds.
    /// </summary>
    public TimeSpan MaxRequestTimeout { get; init; } = DefaultMaxRequestTimeout;

    /// <summary><c>--max-request-body-size</c>: larger bodies are refused with 413. Default 4 MiB.</summary>
    public long MaxRequestBodySize { get; init; } = DefaultMaxRequestBodySize;
}
