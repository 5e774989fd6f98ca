// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Structured.Internal;

/// <summary>A set of bytes as 256 bits (32 bytes, where a <c>bool[256]</c> takes 280), one per grammar node.</summary>
internal sealed class ByteSet
{
    private readonly ulong[] _bits = new ulong[4];

    /// <summary>Whether <paramref name="b"/> is in the set; setting adds or removes it.</summary>
    /// <param name="b">The byte, 0 to 255.</param>
    public bool this[int b]
    {
        get => (_bits[b >> 6] & (1UL << (b & 63))) != 0;
        set
        {
            if (value)
            {
                _bits[b >> 6] |= 1UL << (b & 63);
            }
            else
            {
                _bits[b >> 6] &= ~(1UL << (b & 63));
            }
        }
    }

    /// <summary>Adds every byte of <paramref name="other"/>.</summary>
    /// <param name="other">The other set.</param>
    public void UnionWith(ByteSet other)
    {
        for (int i = 0; i < _bits.Length; i++)
        {
            _bits[i] |= other._bits[i];
        }
    }
}
