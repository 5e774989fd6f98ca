// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Hosting.Hub;

/// <summary>A Hugging Face hub model id, <c>&lt;org&gt;/&lt;name&gt;</c>.</summary>
/// <param name="Organization">The owner (user or organization).</param>
/// <param name="Name">The repository name.</param>
internal readonly record struct HubModelId(string Organization, string Name)
{
    /// <summary>The hub cache folder of the repository: <c>models--org--name</c>.</summary>
    public string CacheFolderName => "models--" + Organization + "--" + Name;

    /// <summary>
    /// Reads <c>org/name</c>: exactly two parts of letters, digits, <c>-</c>, <c>_</c> and <c>.</c>, neither starting
    /// with a dot; anything else (an absolute or deeper path, <c>./x</c>) is a folder.
    /// </summary>
    public static bool TryParse(string text, out HubModelId id)
    {
        id = default;
        var parts = text.Split('/');
        if (parts.Length != 2 || !IsPart(parts[0]) || !IsPart(parts[1]))
        {
            return false;
        }

        id = new HubModelId(parts[0], parts[1]);
        return true;
    }

    /// <inheritdoc />
    public override string ToString() => Organization + "/" + Name;

    private static bool IsPart(string part)
    {
        if (part.Length is 0 or > 96 || part[0] == '.' || part[0] == '-')
        {
            return false;
        }

        foreach (var c in part)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            {
                return false;
            }
        }

        return true;
    }
}
