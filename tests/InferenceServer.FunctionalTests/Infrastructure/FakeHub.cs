using System.Collections.Concurrent;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace InferenceServer.FunctionalTests.Infrastructure;

/// <summary>
/// A Hugging Face hub on Kestrel on loopback, serving one repository from a fixture folder the way the hub does:
/// <c>GET /api/models/{id}/revision/{rev}</c> lists the files (<c>sha</c>, <c>siblings</c>), and
/// <c>HEAD|GET /{id}/resolve/{rev}/{path}</c> serves a file with <c>ETag</c> (the file's SHA-256, as for LFS files)
/// and <c>X-Repo-Commit</c>, honouring <c>Range: bytes=N-</c> with 206. It can require a bearer token (401 without
/// it) and cut the connection halfway through one file's first download.
/// </summary>
internal sealed class FakeHub : IAsyncDisposable
{
    public const string Commit = "0123456789abcdef0123456789abcdef01234567";

    private readonly WebApplication _app;
    private readonly string _repository;
    private readonly string _folder;

    private FakeHub(WebApplication app, string repository, string folder)
    {
        _app = app;
        _repository = repository;
        _folder = folder;
    }

    public Uri Endpoint { get; private set; } = null!;

    /// <summary>Requests seen: method, path and Range header.</summary>
    public ConcurrentQueue<(string Method, string Path, string? Range)> Requests { get; } = new();

    /// <summary>When set, requests without <c>Authorization: Bearer {Token}</c> get 401.</summary>
    public string? Token { get; set; }

    /// <summary>When set, the first full GET of this file sends half of it and aborts the connection.</summary>
    public string? CutFile { get; set; }

    public static async Task<FakeHub> StartAsync(string repository, string folder)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var hub = new FakeHub(app, repository, folder);
        app.Use(async (context, next) =>
        {
            hub.Requests.Enqueue((context.Request.Method, context.Request.Path.Value ?? string.Empty, context.Request.Headers.Range.ToString() is { Length: > 0 } range ? range : null));
            if (hub.Token is { } token && context.Request.Headers.Authorization != "Bearer " + token)
            {
                context.Response.StatusCode = StatusCodes.Status401Unauthorized;
                await context.Response.WriteAsync("""{"error":"Invalid credentials in Authorization header"}""");
                return;
            }

            await next(context);
        });
        app.MapGet("/api/models/{org}/{name}/revision/{revision}", hub.ListAsync);
        app.MapMethods("/{org}/{name}/resolve/{revision}/{**path}", ["GET", "HEAD"], hub.ResolveAsync);
        await app.StartAsync();
        hub.Endpoint = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        return hub;
    }

    private async Task ListAsync(HttpContext context, string org, string name, string revision)
    {
        if (org + "/" + name != _repository || revision is not ("main" or Commit))
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }

        var siblings = Directory.GetFiles(_folder, "*", SearchOption.AllDirectories)
            .Select(f => new { rfilename = Path.GetRelativePath(_folder, f).Replace('\\', '/') });
        await context.Response.WriteAsJsonAsync(new { id = _repository, sha = Commit, siblings });
    }

    private async Task ResolveAsync(HttpContext context, string org, string name, string revision, string path)
    {
        var file = Path.Combine(_folder, path);
        if (org + "/" + name != _repository || revision is not ("main" or Commit) || !File.Exists(file))
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }

        var bytes = await File.ReadAllBytesAsync(file);
        context.Response.Headers.ETag = "\"" + Convert.ToHexStringLower(SHA256.HashData(bytes)) + "\"";
        context.Response.Headers["X-Repo-Commit"] = Commit;
        var start = 0;
        if (context.Request.Headers.Range.ToString() is { Length: > 0 } range && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-'))
        {
            start = int.Parse(range["bytes=".Length..^1], System.Globalization.CultureInfo.InvariantCulture);
            context.Response.StatusCode = StatusCodes.Status206PartialContent;
            context.Response.Headers.ContentRange = $"bytes {start}-{bytes.Length - 1}/{bytes.Length}";
        }

        context.Response.ContentLength = bytes.Length - start;
        if (HttpMethods.IsHead(context.Request.Method))
        {
            return;
        }

        if (CutFile == path && start == 0)
        {
            CutFile = null;
            await context.Response.Body.WriteAsync(bytes.AsMemory(0, bytes.Length / 2));
            await context.Response.Body.FlushAsync();
            context.Abort();
            return;
        }

        await context.Response.Body.WriteAsync(bytes.AsMemory(start));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
