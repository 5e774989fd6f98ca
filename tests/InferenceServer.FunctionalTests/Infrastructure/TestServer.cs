using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text;
using System.Text.Json;
using InferenceServer.Engine.Scheduling;
using InferenceServer.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;

namespace InferenceServer.FunctionalTests.Infrastructure;

/// <summary>
/// The real server (the same composition root as the executable) on Kestrel, bound to a free loopback port,
/// with the official OpenAI client pointed at it.
/// </summary>
public sealed class TestServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private TestServer(WebApplication app, Uri baseAddress)
    {
        _app = app;
        BaseAddress = baseAddress;
        Http = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(120) };
        OpenAI = new OpenAIClient(new ApiKeyCredential("test-key"), new OpenAIClientOptions
        {
            Endpoint = new Uri(baseAddress, "/v1"),
            RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
            NetworkTimeout = TimeSpan.FromSeconds(120),
        });
    }

    public Uri BaseAddress { get; }

    public HttpClient Http { get; }

    public OpenAIClient OpenAI { get; }

    public ContinuousBatchScheduler Scheduler => _app.Services.GetRequiredService<ContinuousBatchScheduler>();

    public WebApplication App => _app;

    public static Task<TestServer> StartAsync(string model, params string[] extraArgs) => StartAsync(model, null, extraArgs);

    public static async Task<TestServer> StartAsync(string model, Action<WebApplicationBuilder>? configure, params string[] extraArgs)
    {
        string[] args = ["--model", model, "--urls", "http://127.0.0.1:0", "--Logging:LogLevel:Default", "Warning", .. extraArgs];
        var app = ServerProgram.Build(args, configure);
        await app.StartAsync().WaitAsync(TimeSpan.FromSeconds(60));
        var address = app.Urls.First();
        return new TestServer(app, new Uri(address));
    }

    /// <summary>POSTs <paramref name="json"/> to <c>/v1/completions</c> through the OpenAI client's pipeline; throws <see cref="ClientResultException"/> on an error status.</summary>
    public async Task<JsonElement> CompleteAsync(string json)
    {
        using var message = CreatePost("/v1/completions", json);
        await OpenAI.Pipeline.SendAsync(message);
        var response = message.Response!;
        if (response.IsError)
        {
            throw new ClientResultException(response);
        }

        using var document = JsonDocument.Parse(response.Content.ToMemory());
        return document.RootElement.Clone();
    }

    /// <summary>POSTs a streamed request and returns the SSE data payloads, in order.</summary>
    public async Task<List<string>> StreamAsync(string json)
    {
        using var message = CreatePost("/v1/completions", json);
        message.BufferResponse = false;
        await OpenAI.Pipeline.SendAsync(message);
        var response = message.Response!;
        if (response.IsError)
        {
            throw new ClientResultException(response);
        }

        var events = new List<string>();
        using var reader = new StreamReader(response.ContentStream!, Encoding.UTF8);
        while (await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60)) is { } line)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                events.Add(line["data: ".Length..]);
            }
        }

        return events;
    }

    public async Task<(int Status, JsonElement Body)> PostRawAsync(string path, string body, string contentType = "application/json")
    {
        using var content = new StringContent(body, Encoding.UTF8, contentType);
        using var response = await Http.PostAsync(path, content);
        var text = await response.Content.ReadAsStringAsync();
        using var document = JsonDocument.Parse(text);
        return ((int)response.StatusCode, document.RootElement.Clone());
    }

    private PipelineMessage CreatePost(string path, string json)
    {
        var message = OpenAI.Pipeline.CreateMessage();
        message.Request.Method = "POST";
        message.Request.Uri = new Uri(BaseAddress, path);
        message.Request.Headers.Set("Content-Type", "application/json");
        message.Request.Content = BinaryContent.Create(BinaryData.FromString(json));
        message.ResponseClassifier = PipelineMessageClassifier.Create([200]);
        return message;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _app.StopAsync().WaitAsync(TimeSpan.FromSeconds(60));
        await _app.DisposeAsync();
    }
}
