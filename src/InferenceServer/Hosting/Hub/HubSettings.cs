// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Hosting.Hub;

/// <summary>
/// Where hub models come from and are kept, from the variables huggingface_hub reads: <c>HF_ENDPOINT</c>,
/// <c>HF_TOKEN</c>, <c>HF_HUB_CACHE</c> / <c>HF_HOME</c> and <c>HF_HUB_OFFLINE</c>.
/// </summary>
internal sealed record HubSettings
{
    /// <summary>The hub's base address; default <c>https://huggingface.co</c>.</summary>
    public Uri Endpoint { get; init; } = new("https://huggingface.co");

    /// <summary>A bearer token for gated and private repositories, or null.</summary>
    public string? Token { get; init; }

    /// <summary>The hub cache: <c>HF_HUB_CACHE</c>, else <c>$HF_HOME/hub</c>, else <c>~/.cache/huggingface/hub</c>.</summary>
    public required string CacheDirectory { get; init; }

    /// <summary>Never reach the network: the model must be in the cache (<c>HF_HUB_OFFLINE=1</c>).</summary>
    public bool Offline { get; init; }

    /// <summary>Reads the settings from the process's environment.</summary>
    public static HubSettings FromEnvironment() => FromVariables(Environment.GetEnvironmentVariable);

    /// <summary>Reads the settings through <paramref name="variable"/> (tests pass their own).</summary>
    public static HubSettings FromVariables(Func<string, string?> variable)
    {
        ArgumentNullException.ThrowIfNull(variable);
        var cache = variable("HF_HUB_CACHE");
        if (string.IsNullOrEmpty(cache))
        {
            var home = variable("HF_HOME");
            if (string.IsNullOrEmpty(home))
            {
                var xdg = variable("XDG_CACHE_HOME");
                home = Path.Combine(!string.IsNullOrEmpty(xdg) ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "huggingface");
            }

            cache = Path.Combine(home, "hub");
        }

        var endpoint = variable("HF_ENDPOINT");
        var token = variable("HF_TOKEN");
        var offline = variable("HF_HUB_OFFLINE");
        return new HubSettings
        {
            Endpoint = string.IsNullOrEmpty(endpoint) ? new Uri("https://huggingface.co") : new Uri(endpoint.TrimEnd('/')),
            Token = string.IsNullOrEmpty(token) ? null : token,
            CacheDirectory = cache,
            Offline = offline is "1" or "true" or "TRUE" or "yes",
        };
    }
}
