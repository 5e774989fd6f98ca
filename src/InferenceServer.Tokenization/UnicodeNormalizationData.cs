using System.Globalization;

namespace InferenceServer.Tokenization;

/// <summary>
/// The Unicode Character Database tables that normalization needs (combining classes, full decompositions, primary
/// composites), parsed once from the embedded <c>UnicodeNormalizationData.txt</c>. The runtime is built with
/// InvariantGlobalization, where <see cref="string.Normalize()"/> is a no-op, so the tables travel with this assembly.
/// </summary>
internal sealed class UnicodeNormalizationData
{
    private const string ResourceName = "InferenceServer.Tokenization.UnicodeNormalizationData.txt";

    private static readonly Lazy<UnicodeNormalizationData> LazyInstance = new(Load);

    private readonly Dictionary<int, byte> _combiningClasses = new();
    private readonly Dictionary<int, int[]> _canonical = new();
    private readonly Dictionary<int, int[]> _compatibility = new();
    private readonly Dictionary<long, int> _composites = new();

    private UnicodeNormalizationData()
    {
    }

    /// <summary>The tables, loaded on first use.</summary>
    public static UnicodeNormalizationData Instance => LazyInstance.Value;

    /// <summary>Returns the canonical combining class of <paramref name="codePoint"/> (0 for starters).</summary>
    /// <param name="codePoint">A Unicode scalar value.</param>
    public int CombiningClass(int codePoint) => _combiningClasses.TryGetValue(codePoint, out byte value) ? value : 0;

    /// <summary>
    /// Returns the full (recursive) decomposition of <paramref name="codePoint"/>, or null when it has none; Hangul
    /// syllables are not included (they decompose algorithmically).
    /// </summary>
    /// <param name="codePoint">A Unicode scalar value.</param>
    /// <param name="compatibility">True for the compatibility decomposition (NFKD), false for the canonical one.</param>
    public int[]? Decomposition(int codePoint, bool compatibility)
        => (compatibility ? _compatibility : _canonical).TryGetValue(codePoint, out int[]? value) ? value : null;

    /// <summary>Returns the primary composite of the pair, or -1; Hangul is not included.</summary>
    /// <param name="first">The starter.</param>
    /// <param name="second">The character that follows it.</param>
    public int Compose(int first, int second)
        => _composites.TryGetValue(((long)first << 21) | (uint)second, out int value) ? value : -1;

    private static UnicodeNormalizationData Load()
    {
        using Stream stream = typeof(UnicodeNormalizationData).Assembly.GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"Embedded resource {ResourceName} is missing.");
        using var reader = new StreamReader(stream);
        var data = new UnicodeNormalizationData();
        var canonicalSingle = new Dictionary<int, int[]>();
        var compatibilitySingle = new Dictionary<int, int[]>();
        var exclusions = new HashSet<int>();
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            string[] fields = line.Split(' ');
            switch (fields[0])
            {
                case "C":
                    (int first, int last) = ParseRange(fields[1]);
                    byte value = byte.Parse(fields[2], CultureInfo.InvariantCulture);
                    for (int cp = first; cp <= last; cp++)
                    {
                        data._combiningClasses[cp] = value;
                    }

                    break;
                case "D":
                case "K":
                    int codePoint = ParseHex(fields[1]);
                    var mapping = new int[fields.Length - 2];
                    for (int i = 0; i < mapping.Length; i++)
                    {
                        mapping[i] = ParseHex(fields[i + 2]);
                    }

                    compatibilitySingle[codePoint] = mapping;
                    if (fields[0] == "D")
                    {
                        canonicalSingle[codePoint] = mapping;
                    }

                    break;
                case "X":
                    (int from, int to) = ParseRange(fields[1]);
                    for (int cp = from; cp <= to; cp++)
                    {
                        exclusions.Add(cp);
                    }

                    break;
                default:
                    throw new InvalidDataException($"Unexpected line in {ResourceName}: {line}");
            }
        }

        foreach (int codePoint in canonicalSingle.Keys)
        {
            data._canonical[codePoint] = Expand(codePoint, canonicalSingle);
            int[] pair = canonicalSingle[codePoint];
            if (pair.Length == 2 && !exclusions.Contains(codePoint))
            {
                data._composites[((long)pair[0] << 21) | (uint)pair[1]] = codePoint;
            }
        }

        foreach (int codePoint in compatibilitySingle.Keys)
        {
            data._compatibility[codePoint] = Expand(codePoint, compatibilitySingle);
        }

        return data;
    }

    private static int[] Expand(int codePoint, Dictionary<int, int[]> single)
    {
        var result = new List<int>();
        Append(codePoint, single, result);
        return result.ToArray();
    }

    private static void Append(int codePoint, Dictionary<int, int[]> single, List<int> result)
    {
        if (single.TryGetValue(codePoint, out int[]? mapping))
        {
            foreach (int part in mapping)
            {
                Append(part, single, result);
            }
        }
        else if (UnicodeNormalization.IsHangulSyllable(codePoint))
        {
            UnicodeNormalization.AppendHangulDecomposition(codePoint, result);
        }
        else
        {
            result.Add(codePoint);
        }
    }

    private static (int First, int Last) ParseRange(string text)
    {
        int dash = text.IndexOf('-', StringComparison.Ordinal);
        return dash < 0
            ? (ParseHex(text), ParseHex(text))
            : (ParseHex(text[..dash]), ParseHex(text[(dash + 1)..]));
    }

    private static int ParseHex(string text) => int.Parse(text, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);
}
