using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text;
using System.Text.Json;
using Grpc.Net.Client;
using InferenceServer.Engine.Scheduling;
using InferenceServer.Grpc;
using InferenceServer.Grpc.V1;
using InferenceServer.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;

namespace InferenceServer.FunctionalTests.Infrastructure;

/// <summary>
/// The real server (the same composition root as the executable) on Kestrel, bound to a free loopback port,
/// with the official OpenAI client pointed at it, and its gRPC port (also a free one) with a real gRPC channel.
/// </summary>
public sealed class TestServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private TestServer(WebApplication app, Uri baseAddress, Uri? grpcAddress)
    {
        _app = app;
        BaseAddress = baseAddress;
        GrpcAddress = grpcAddress;
        if (grpcAddress is not null)
        {
            GrpcChannel = GrpcChannel.ForAddress(grpcAddress, new GrpcChannelOptions { MaxRetryAttempts = 0 });
            Grpc = new Inference.InferenceClient(GrpcChannel);
        }

        Http = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(120) };
        OpenAI = new OpenAIClient(new ApiKeyCredential("test-key"), new OpenAIClientOptions
        {
            Endpoint = new Uri(baseAddress, "/v1"),
            RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
            NetworkTimeout = TimeSpan.FromSeconds(120),
        });
    }

    public Uri BaseAddress { get; }

    /// <summary>The gRPC port's address (plaintext h2c), or null when started without one.</summary>
    public Uri? GrpcAddress { get; }

    public GrpcChannel? GrpcChannel { get; }

    /// <summary>The generated client of <c>inference.v1.Inference</c> over <see cref="GrpcChannel"/>.</summary>
    public Inference.InferenceClient? Grpc { get; }

    public IServiceProvider Services => _app.Services;

    public HttpClient Http { get; }

    public OpenAIClient OpenAI { get; }

    public ContinuousBatchScheduler Scheduler => _app.Services.GetRequiredService<ContinuousBatchScheduler>();

    public WebApplication App => _app;

    public static Task<TestServer> StartAsync(string model, params string[] extraArgs) => StartAsync(model, null, extraArgs);

    public static async Task<TestServer> StartAsync(string model, Action<WebApplicationBuilder>? configure, params string[] extraArgs)
    {
        // The gRPC port is chosen as the HTTP port is: port 0, read back after start.
        string[] args = ["--model", model, "--urls", "http://127.0.0.1:0", "--grpc-port", "0", "--Logging:LogLevel:Default", "Warning", .. extraArgs];
        var app = ServerProgram.Build(args, configure);
        await app.StartAsync().WaitAsync(TimeSpan.FromSeconds(60));
        var grpc = app.Services.GetService<GrpcListener>();
        var grpcPort = grpc?.BoundEndPoint?.Port;
        var address = app.Urls.First(url => grpcPort is null || new Uri(url).Port != grpcPort);
        return new TestServer(app, new Uri(address), grpc?.Address);
    }

    /// <summary>POSTs <paramref name="json"/> to <c>/v1/completions</c> through the OpenAI client's pipeline; throws <see cref="ClientResultException"/> on an error status.</summary>
    public async Task<JsonElement> CompleteAsync(string json, string path = "/v1/completions")
    {
        using var message = CreatePost(path, json);
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
    public async Task<List<string>> StreamAsync(string json, string path = "/v1/completions")
    {
        using var message = CreatePost(path, json);
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
        GrpcChannel?.Dispose();
        await _app.StopAsync().WaitAsync(TimeSpan.FromSeconds(60));
        await _app.DisposeAsync();
    }
}
