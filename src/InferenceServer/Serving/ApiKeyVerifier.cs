// Licensed under the MIT License. See LICENSE in the repository root.
using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Primitives;

namespace InferenceServer.Serving;

/// <summary>
/// The one place that compares a presented API key with the keys of <c>--api-key</c>, for HTTP
/// (the API key middleware) and gRPC metadata alike. Keys are kept as SHA-256 digests and a presented key is
/// hashed the same way, so every comparison is of 32 bytes with <see cref="CryptographicOperations.FixedTimeEquals"/>:
/// the time taken says nothing about a key's length, how much of it matched, or which key matched.
/// </summary>
internal sealed class ApiKeyVerifier
{
    private const string BearerScheme = "Bearer ";

    // Keys longer than this are hashed through a pooled buffer instead of the stack.
    private const int StackLimit = 256;

    private readonly byte[][] _digests;

    /// <summary>Creates the verifier for <paramref name="keys"/>; with none, <see cref="IsEnabled"/> is false and nothing needs a key.</summary>
    public ApiKeyVerifier(IReadOnlyList<string> keys)
    {
        ArgumentNullException.ThrowIfNull(keys);
        _digests = new byte[keys.Count][];
        for (var i = 0; i < keys.Count; i++)
        {
            _digests[i] = SHA256.HashData(Encoding.UTF8.GetBytes(keys[i]));
        }
    }

    /// <summary>True when the server was started with at least one key, so that requests must present one.</summary>
    public bool IsEnabled => _digests.Length > 0;

    /// <summary>How many keys the server was started with.</summary>
    public int Count => _digests.Length;

    /// <summary>Whether an <c>Authorization</c> header value (<c>Bearer &lt;key&gt;</c>, scheme case-insensitive) carries a key.</summary>
    public bool IsAuthorized(string? authorization) => Match(authorization) >= 0;

    /// <summary>
    /// The index of the key that <paramref name="authorization"/> carries, or -1: none, or not exactly one value (gRPC
    /// metadata may repeat a key). The index identifies the caller (gRPC scopes request ids to it).
    /// </summary>
    public int Match(StringValues authorization) => authorization.Count == 1 ? Match(authorization[0]) : -1;

    /// <summary>The index of the key an <c>Authorization</c> header value (<c>Bearer &lt;key&gt;</c>) carries, or -1.</summary>
    public int Match(string? authorization)
    {
        if (authorization is null || !authorization.StartsWith(BearerScheme, StringComparison.OrdinalIgnoreCase))
        {
            return -1;
        }

        return KeyIndex(authorization.AsSpan(BearerScheme.Length).Trim());
    }

    /// <summary>The index of the key equal to <paramref name="presented"/>, or -1; every key is compared, in constant time.</summary>
    private int KeyIndex(ReadOnlySpan<char> presented)
    {
        var length = Encoding.UTF8.GetMaxByteCount(presented.Length);
        byte[]? rented = null;
        var bytes = length <= StackLimit ? stackalloc byte[StackLimit] : (rented = ArrayPool<byte>.Shared.Rent(length));
        try
        {
            var written = Encoding.UTF8.GetBytes(presented, bytes);
            Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
            SHA256.HashData(bytes[..written], digest);
            var match = -1;
            for (var i = 0; i < _digests.Length; i++)
            {
                // Every key is compared, so the time taken says nothing about which one matched.
                match = CryptographicOperations.FixedTimeEquals(digest, _digests[i]) ? i : match;
            }

            return match;
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented, clearArray: true);
            }
        }
    }
}
