// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Http;

/// <summary>API keys and CORS, read from <c>--api-key</c> and the <c>--allowed-*</c> options (vLLM's names and defaults).</summary>
internal sealed class HttpOptions
{
    /// <summary>Keys accepted on <c>/v1/*</c>; empty (the default) leaves the API open.</summary>
    public IReadOnlyList<string> ApiKeys { get; init; } = [];

    /// <summary>CORS origins; default <c>*</c> (any), as vLLM.</summary>
    public IReadOnlyList<string> AllowedOrigins { get; init; } = ["*"];

    /// <summary>CORS methods; default <c>*</c>.</summary>
    public IReadOnlyList<string> AllowedMethods { get; init; } = ["*"];

    /// <summary>CORS request headers; default <c>*</c>.</summary>
    public IReadOnlyList<string> AllowedHeaders { get; init; } = ["*"];

    /// <summary>Whether CORS responses allow credentials; default false.</summary>
    public bool AllowCredentials { get; init; }

    /// <summary>
    /// Reads a list option: a JSON array (<c>["https://a", "https://b"]</c>, vLLM's form) or a comma-separated list;
    /// null when the option is absent.
    /// </summary>
    public static IReadOnlyList<string>? ReadList(IConfiguration configuration, string key)
    {
        var text = configuration[key]?.Trim();
        if (string.IsNullOrEmpty(text))
        {
            // Repeated options and appsettings arrays arrive as key:0, key:1, ...
            var children = configuration.GetSection(key).GetChildren().Select(c => c.Value).OfType<string>().Where(v => v.Length > 0).ToList();
            return children.Count > 0 ? children : null;
        }

        if (text.StartsWith('['))
        {
            try
            {
                var items = System.Text.Json.JsonSerializer.Deserialize<string[]>(text);
                if (items is { Length: > 0 } && items.All(i => !string.IsNullOrWhiteSpace(i)))
                {
                    return items;
                }
            }
            catch (System.Text.Json.JsonException)
            {
            }

            throw new FormatException($"--{key} must be a JSON array of non-empty strings or a comma-separated list, not '{text}'");
        }

        return text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
    }

    /// <summary>Reads the options from configuration.</summary>
    public static HttpOptions FromConfiguration(IConfiguration configuration)
    {
        var defaults = new HttpOptions();
        var keys = ReadList(configuration, "api-key") ?? [];
        return new HttpOptions
        {
            ApiKeys = keys,
            AllowedOrigins = ReadList(configuration, "allowed-origins") ?? defaults.AllowedOrigins,
            AllowedMethods = ReadList(configuration, "allowed-methods") ?? defaults.AllowedMethods,
            AllowedHeaders = ReadList(configuration, "allowed-headers") ?? defaults.AllowedHeaders,
            AllowCredentials = configuration["allow-credentials"] is { } credentials && ReadBool(credentials, "allow-credentials"),
        };
    }

    private static bool ReadBool(string text, string key) => bool.TryParse(text, out var value)
        ? value
        : throw new FormatException($"--{key} must be true or false, not '{text}'");
}
