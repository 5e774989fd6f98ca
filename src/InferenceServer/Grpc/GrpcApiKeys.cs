// Licensed under the MIT License. See LICENSE in the repository root.
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Primitives;

namespace InferenceServer.Grpc;

/// <summary>
/// The keys of <c>--api-key</c> as the gRPC port checks them: <c>authorization: Bearer &lt;key&gt;</c>, one header. Keys
/// are kept as SHA-256 digests and the presented key's digest is compared with every one of them by
/// <see cref="CryptographicOperations.FixedTimeEquals"/>, so the time taken says nothing about a key's length, its
/// content or which key matched.
/// </summary>
internal sealed class GrpcApiKeys
{
    private const string Scheme = "Bearer ";

    private readonly byte[][] _digests;

    /// <summary>Keeps the digests of <paramref name="keys"/>; none means authentication is off.</summary>
    public GrpcApiKeys(IReadOnlyList<string> keys)
    {
        _digests = new byte[keys.Count][];
        for (var i = 0; i < keys.Count; i++)
        {
            _digests[i] = SHA256.HashData(Encoding.UTF8.GetBytes(keys[i]));
        }
    }

    /// <summary>Number of keys; 0 when <c>--api-key</c> is off.</summary>
    public int Count => _digests.Length;

    /// <summary>The index of the key that <paramref name="authorization"/> presents, or -1 when it presents none of them.</summary>
    public int Match(StringValues authorization)
    {
        if (authorization.Count != 1 || authorization[0] is not { } header || !header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
        {
            return -1;
        }

        var key = header.AsSpan(Scheme.Length).Trim();
        var bytes = new byte[Encoding.UTF8.GetMaxByteCount(key.Length)];
        var length = Encoding.UTF8.GetBytes(key, bytes);
        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(bytes.AsSpan(0, length), digest);
        var match = -1;
        for (var i = 0; i < _digests.Length; i++)
        {
            // Every key is compared; no early exit.
            var equal = CryptographicOperations.FixedTimeEquals(digest, _digests[i]);
            match = equal ? i : match;
        }

        return match;
    }
}
