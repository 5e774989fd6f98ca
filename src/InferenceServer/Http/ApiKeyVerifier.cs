// Licensed under the MIT License. See LICENSE in the repository root.
using System.Buffers;
using System.Security.Cryptography;
using System.Text;

namespace InferenceServer.Http;

/// <summary>
/// The one place that compares a presented API key with the keys of <c>--api-key</c>, for HTTP
/// (<see cref="ApiKeyMiddleware"/>) and gRPC metadata alike. Keys are kept as SHA-256 digests and a presented key is
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

    /// <summary>
    /// True when <paramref name="authorization"/> (an <c>Authorization</c> header or <c>authorization</c> gRPC metadata
    /// value) is <c>Bearer &lt;key&gt;</c> (scheme case-insensitive) with one of the keys.
    /// </summary>
    public bool IsAuthorized(string? authorization)
    {
        if (authorization is null || !authorization.StartsWith(BearerScheme, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        return IsKey(authorization.AsSpan(BearerScheme.Length).Trim());
    }

    /// <summary>True when <paramref name="presented"/> is one of the keys, compared in constant time.</summary>
    public bool IsKey(ReadOnlySpan<char> presented)
    {
        var length = Encoding.UTF8.GetMaxByteCount(presented.Length);
        byte[]? rented = null;
        var bytes = length <= StackLimit ? stackalloc byte[StackLimit] : (rented = ArrayPool<byte>.Shared.Rent(length));
        try
        {
            var written = Encoding.UTF8.GetBytes(presented, bytes);
            Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
            SHA256.HashData(bytes[..written], digest);
            var match = false;
            foreach (var key in _digests)
            {
                // Every key is compared, so the time taken says nothing about which one matched.
                match |= CryptographicOperations.FixedTimeEquals(digest, key);
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
