// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Grpc;

/// <summary>The gRPC listener: its own HTTP/2 port beside the HTTP port, plaintext (h2c) unless a certificate is given.</summary>
internal sealed class GrpcServerOptions
{
    /// <summary>Default of <see cref="MaxBufferedChunks"/>.</summary>
    public const int DefaultMaxBufferedChunks = 1024;

    /// <summary>Default of <see cref="MaxMessageSize"/>: 4 MiB, gRPC's usual receive limit.</summary>
    public const int DefaultMaxMessageSize = 4 * 1024 * 1024;

    /// <summary><c>--grpc-port</c>: the port of the gRPC listener; 0 picks a free one; null (the default) opens no gRPC listener.</summary>
    public int? Port { get; init; }

    /// <summary><c>--grpc-host</c>: the address to bind; default: the host of the first HTTP URL (<c>--urls</c>).</summary>
    public string? Host { get; init; }

    /// <summary><c>--grpc-tls-certificate</c>: a PEM certificate (with <see cref="TlsKey"/>) or a PKCS#12 file; null serves plaintext h2c.</summary>
    public string? TlsCertificate { get; init; }

    /// <summary><c>--grpc-tls-key</c>: the PEM private key of a PEM <see cref="TlsCertificate"/>.</summary>
    public string? TlsKey { get; init; }

    /// <summary>
    /// <c>--grpc-max-buffered-chunks</c>: most chunks of one Generate call waiting for a slow client; beyond that the
    /// request is aborted (its KV blocks freed) and the call ends with RESOURCE_EXHAUSTED. Default 1024.
    /// </summary>
    public int MaxBufferedChunks { get; init; } = DefaultMaxBufferedChunks;

    /// <summary>
    /// <c>--grpc-max-message-size</c>: the largest request message the server accepts, in bytes, after decompression
    /// (a <c>grpc-encoding: gzip</c> message is measured both as sent and as inflated). A larger one ends the call with
    /// RESOURCE_EXHAUSTED before it is read. Default 4 MiB (4194304).
    /// </summary>
    public int MaxMessageSize { get; init; } = DefaultMaxMessageSize;
}
