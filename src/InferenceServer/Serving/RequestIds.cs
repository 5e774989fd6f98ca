// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Serving;

/// <summary>
/// Which caller-supplied request ids are kept (HTTP's <c>X-Request-Id</c> header, gRPC's <c>x-request-id</c> metadata
/// and <c>request_id</c> field): 1 to <see cref="MaxLength"/> visible ASCII characters; anything else gets a fresh id.
/// </summary>
internal static class RequestIds
{
    /// <summary>Longest caller-supplied id kept.</summary>
    public const int MaxLength = 128;

    /// <summary>True for 1 to <see cref="MaxLength"/> visible ASCII characters.</summary>
    public static bool IsUsable(string? id)
    {
        if (string.IsNullOrEmpty(id) || id.Length > MaxLength)
        {
            return false;
        }

        foreach (var c in id)
        {
            if (c is < '!' or > '~')
            {
                return false;
            }
        }

        return true;
    }
}
