// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;

namespace InferenceServer.Hosting.Hub;

/// <summary>
/// <c>--model &lt;org&gt;/&lt;name&gt;</c>: finds the model in the Hugging Face hub cache (huggingface_hub's layout:
/// <c>models--org--name/refs/&lt;revision&gt;</c> holds the commit, <c>snapshots/&lt;commit&gt;/&lt;file&gt;</c> links
/// to <c>blobs/&lt;etag&gt;</c>), or downloads the files the server needs into that layout, so other tools find them
/// too. A download resumes: a file's bytes so far stay in <c>blobs/&lt;etag&gt;.incomplete</c> and the next start asks
/// for the rest with a <c>Range</c> request. <c>config.json</c> is fetched last, so a snapshot that has it is complete.
/// </summary>
internal static class HubModelResolver
{
    private const int MaxRedirects = 5;

    /// <summary>The snapshot folder of <paramref name="id"/> at <paramref name="revision"/>, downloaded when not cached.</summary>
    /// <exception cref="StartupException">The model is not cached and cannot be downloaded; the message says why.</exception>
    public static string Resolve(HubModelId id, string revision, HubSettings settings, Action<string> log)
        => Task.Run(() => ResolveAsync(id, revision, settings, log, CancellationToken.None)).GetAwaiter().GetResult();

    /// <inheritdoc cref="Resolve"/>
    public static async Task<string> ResolveAsync(HubModelId id, string revision, HubSettings settings, Action<string> log, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(log);
        var repository = Path.Combine(settings.CacheDirectory, id.CacheFolderName);
        if (CachedSnapshot(repository, revision) is { } cached)
        {
            log($"model {id} ({revision}) from the Hugging Face cache {cached}");
            return cached;
        }

        if (settings.Offline)
        {
            throw new StartupException($"--model {id}: revision {revision} is not in the Hugging Face cache {settings.CacheDirectory}, and HF_HUB_OFFLINE forbids downloading it");
        }

        using var handler = new SocketsHttpHandler { AllowAutoRedirect = false, ConnectTimeout = TimeSpan.FromSeconds(30) };
        using var client = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        try
        {
            var (commit, files) = await ListAsync(client, id, revision, settings, cancellationToken).ConfigureAwait(false);
            var snapshot = Path.Combine(repository, "snapshots", commit);
            log($"model {id} ({revision}, commit {commit}): downloading {files.Count} files from {settings.Endpoint} into {repository}");
            foreach (var file in files)
            {
                await DownloadAsync(client, id, commit, file, repository, snapshot, settings, log, cancellationToken).ConfigureAwait(false);
            }

            if (!string.Equals(revision, commit, StringComparison.Ordinal))
            {
                var refs = Path.Combine(repository, "refs", revision);
                Directory.CreateDirectory(Path.GetDirectoryName(refs)!);
                await File.WriteAllTextAsync(refs, commit, cancellationToken).ConfigureAwait(false);
            }

            return snapshot;
        }
        catch (HttpRequestException ex)
        {
            throw new StartupException($"--model {id}: {settings.Endpoint} cannot be reached ({ex.Message}); check HF_ENDPOINT and the network, or put the model in the Hugging Face cache {settings.CacheDirectory}", ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new StartupException($"--model {id}: the download into {repository} failed ({ex.Message}); start again to resume it, or set HF_HUB_CACHE to a writable folder", ex);
        }
    }

    /// <summary>
    /// Which of a repository's files the server needs: configuration, tokenizer and chat template files, and either the
    /// ONNX graph the server loads (<c>model.onnx</c> or <c>onnx/model.onnx</c>, with its external data) or, without
    /// one, the safetensors checkpoint (which the server builds). <c>config.json</c> comes last.
    /// </summary>
    internal static List<string> SelectFiles(IReadOnlyList<string> siblings)
    {
        string? graph = siblings.Contains("model.onnx") ? "model.onnx" : siblings.Contains("onnx/model.onnx") ? "onnx/model.onnx" : null;
        var selected = new List<string>();
        foreach (var file in siblings)
        {
            var name = Path.GetFileName(file);
            var rootFile = !file.Contains('/', StringComparison.Ordinal);
            var wanted = rootFile && (name is "generation_config.json" or "special_tokens_map.json" or "chat_template.jinja" or "genai_config.json"
                || (name.StartsWith("tokenizer", StringComparison.Ordinal) && name.EndsWith(".json", StringComparison.Ordinal)));
            if (graph is not null)
            {
                // The graph and its external data beside it (model.onnx_data, model.onnx.data); other variants are left.
                wanted |= Path.GetDirectoryName(file) == Path.GetDirectoryName(graph) && name.StartsWith("model.onnx", StringComparison.Ordinal);
            }
            else
            {
                wanted |= rootFile && (name.EndsWith(".safetensors", StringComparison.Ordinal) || name == "model.safetensors.index.json");
            }

            if (wanted && !selected.Contains(file))
            {
                selected.Add(file);
            }
        }

        if (!siblings.Contains("config.json"))
        {
            throw new StartupException("the repository has no config.json at its root, so it is not a model the server can serve");
        }

        selected.Add("config.json");
        return selected;
    }

    private static string? CachedSnapshot(string repository, string revision)
    {
        var commit = revision;
        var refs = Path.Combine(repository, "refs", revision);
        if (File.Exists(refs))
        {
            commit = File.ReadAllText(refs).Trim();
        }

        var snapshot = Path.Combine(repository, "snapshots", commit);
        return commit.Length > 0 && File.Exists(Path.Combine(snapshot, "config.json")) ? snapshot : null;
    }

    private static async Task<(string Commit, List<string> Files)> ListAsync(HttpClient client, HubModelId id, string revision, HubSettings settings, CancellationToken cancellationToken)
    {
        var uri = new Uri(settings.Endpoint, $"/api/models/{id}/revision/{Uri.EscapeDataString(revision)}");
        using var response = await SendAsync(client, HttpMethod.Get, uri, settings, null, cancellationToken).ConfigureAwait(false);
        Check(response, id, revision, settings);
        using var document = await JsonDocument.ParseAsync(await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false), cancellationToken: cancellationToken).ConfigureAwait(false);
        var root = document.RootElement;
        var commit = root.TryGetProperty("sha", out var sha) && sha.GetString() is { Length: > 0 } text ? text : revision;
        var siblings = new List<string>();
        if (root.TryGetProperty("siblings", out var list) && list.ValueKind == JsonValueKind.Array)
        {
            foreach (var sibling in list.EnumerateArray())
            {
                if (sibling.TryGetProperty("rfilename", out var name) && name.GetString() is { Length: > 0 } file)
                {
                    siblings.Add(file);
                }
            }
        }

        try
        {
            return (commit, SelectFiles(siblings));
        }
        catch (StartupException ex)
        {
            throw new StartupException($"--model {id}: {ex.Message}", ex);
        }
    }

    private static async Task DownloadAsync(HttpClient client, HubModelId id, string commit, string file, string repository, string snapshot, HubSettings settings, Action<string> log, CancellationToken cancellationToken)
    {
        var target = Path.Combine(snapshot, file);
        if (File.Exists(target))
        {
            return;
        }

        var uri = new Uri(settings.Endpoint, $"/{id}/resolve/{commit}/{file}");
        string etag;
        long? size;
        using (var head = await SendAsync(client, HttpMethod.Head, uri, settings, null, cancellationToken, followRedirects: false).ConfigureAwait(false))
        {
            if ((int)head.StatusCode >= 400)
            {
                Check(head, id, commit, settings);
            }

            etag = Header(head, "X-Linked-Etag") ?? head.Headers.ETag?.Tag ?? Header(head, "ETag")
                ?? throw new StartupException($"--model {id}: {uri} answered without an ETag, so the file cannot be kept in the hub cache");
            etag = etag.Replace("W/", string.Empty, StringComparison.Ordinal).Trim('"');
            size = long.TryParse(Header(head, "X-Linked-Size"), NumberStyles.None, CultureInfo.InvariantCulture, out var linked) ? linked : head.Content.Headers.ContentLength;
        }

        var blobs = Path.Combine(repository, "blobs");
        Directory.CreateDirectory(blobs);
        var blob = Path.Combine(blobs, etag);
        if (!File.Exists(blob))
        {
            var incomplete = blob + ".incomplete";
            var offset = File.Exists(incomplete) ? new FileInfo(incomplete).Length : 0;
            using var response = await SendAsync(client, HttpMethod.Get, uri, settings, offset > 0 ? offset : null, cancellationToken).ConfigureAwait(false);
            if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable && size == offset)
            {
                // Everything had arrived; only the rename was missing.
            }
            else
            {
                Check(response, id, commit, settings);
                var append = response.StatusCode == HttpStatusCode.PartialContent;
                var output = new FileStream(incomplete, append ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true);
                await using (output.ConfigureAwait(false))
                {
                    var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
                    await using (body.ConfigureAwait(false))
                    {
                        await body.CopyToAsync(output, 1 << 16, cancellationToken).ConfigureAwait(false);
                    }
                }

                var resumed = append ? string.Create(CultureInfo.InvariantCulture, $", resumed at {offset:N0}") : string.Empty;
                log(string.Create(CultureInfo.InvariantCulture, $"downloaded {id}/{file}: {new FileInfo(incomplete).Length:N0} bytes{resumed}"));
            }

            var length = new FileInfo(incomplete).Length;
            if (size is { } expected && length != expected)
            {
                throw new IOException(string.Create(CultureInfo.InvariantCulture, $"{file} has {length:N0} of {expected:N0} bytes"));
            }

            File.Move(incomplete, blob);
        }
        else
        {
            log($"{id}/{file}: already in the cache");
        }

        Link(blob, target);
    }

    // huggingface_hub links snapshots/<commit>/<file> to ../../blobs/<etag> (one more ../ per folder of <file>).
    private static void Link(string blob, string target)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        try
        {
            File.CreateSymbolicLink(target, Path.GetRelativePath(Path.GetDirectoryName(target)!, blob));
        }
        catch (IOException)
        {
            File.Copy(blob, target, overwrite: true);
        }
        catch (UnauthorizedAccessException)
        {
            File.Copy(blob, target, overwrite: true);
        }
    }

    private static async Task<HttpResponseMessage> SendAsync(HttpClient client, HttpMethod method, Uri uri, HubSettings settings, long? rangeStart, CancellationToken cancellationToken, bool followRedirects = true)
    {
        for (var redirects = 0; ; redirects++)
        {
            using var request = new HttpRequestMessage(method, uri);
            // The token goes to the hub only, not to a storage host it redirects to.
            if (settings.Token is { } token && uri.Authority == settings.Endpoint.Authority)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            }

            if (rangeStart is { } start)
            {
                request.Headers.Range = new RangeHeaderValue(start, null);
            }

            var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
            var status = (int)response.StatusCode;
            if (!followRedirects || status is < 300 or >= 400 || response.Headers.Location is not { } location || redirects == MaxRedirects)
            {
                return response;
            }

            uri = location.IsAbsoluteUri ? location : new Uri(uri, location);
            response.Dispose();
        }
    }

    private static void Check(HttpResponseMessage response, HubModelId id, string revision, HubSettings settings)
    {
        switch (response.StatusCode)
        {
            case HttpStatusCode.OK or HttpStatusCode.PartialContent:
                return;
            case HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden:
                throw new StartupException(settings.Token is null
                    ? $"--model {id}: {settings.Endpoint} answered {(int)response.StatusCode}: the repository is gated or private; set HF_TOKEN to an access token that may read it"
                    : $"--model {id}: {settings.Endpoint} refused HF_TOKEN ({(int)response.StatusCode}); check that the token may read this repository");
            case HttpStatusCode.NotFound:
                throw new StartupException($"--model {id}: not found on {settings.Endpoint} at revision {revision}, and not a folder here");
            default:
                throw new StartupException($"--model {id}: {response.RequestMessage?.RequestUri} answered {(int)response.StatusCode} {response.ReasonPhrase}");
        }
    }

    private static string? Header(HttpResponseMessage response, string name)
        => response.Headers.TryGetValues(name, out var values) || response.Content.Headers.TryGetValues(name, out values) ? values.FirstOrDefault() : null;
}
