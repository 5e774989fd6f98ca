// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Engine;
using InferenceServer.Engine.Scheduling;
using InferenceServer.Http;
using InferenceServer.Grpc;
using Microsoft.Extensions.DependencyInjection.Extensions;
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;
using InferenceServer.OpenAi;
using InferenceServer.OpenAi.Chat;
using InferenceServer.Templating;

namespace InferenceServer.Hosting;

/// <summary>
/// The composition root: reads options, loads the model (a bad model folder is one line on stderr and exit code 2),
/// registers the engine, logging, tracing and metrics, and maps the endpoints.
/// </summary>
internal static partial class ServerProgram
{
    /// <summary>Exit code for a bad command line or model folder.</summary>
    public const int StartupFailure = 2;

    /// <summary>The folder of the embedded default model, relative to the repository or the published app.</summary>
    public const string DefaultModelFolder = "models/tiny-pycoder";

    /// <summary>Runs the server until shutdown; returns the process exit code.</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        WebApplication app;
        try
        {
            app = Build(args);
        }
        catch (StartupException ex)
        {
            await Console.Error.WriteLineAsync($"error: {ex.Message}").ConfigureAwait(false);
            return StartupFailure;
        }

        await using (app.ConfigureAwait(false))
        {
            await app.RunAsync().ConfigureAwait(false);
        }

        return 0;
    }

    /// <summary>
    /// Builds the application: model loaded, engine registered, endpoints mapped; not started. <paramref name="configure"/>
    /// (tests) runs on the builder before it builds, for example to add an in-memory trace exporter.
    /// </summary>
    /// <exception cref="StartupException">The options or the model folder are unusable.</exception>
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(ServerOptions.ExpandFlags(args));
        ServerOptions options;
        HttpOptions http;
        ServedModel model;
        bool grpc;
        try
        {
            options = ServerOptions.FromConfiguration(builder.Configuration);
            http = HttpOptions.FromConfiguration(builder.Configuration);

            // Before the model loads, so that a bad URL or certificate fails fast.
            grpc = GrpcHosting.AddInferenceGrpc(builder, options.Grpc);
            var folder = options.Model is { } given
                ? CheckpointBuilds.Resolve(given, builder.Configuration["build-cache"], options.DType, options.Session.Device, static line => Console.Error.WriteLine("info: " + line), split: options.Session.AttentionDevices.Count > 0)
                : FindDefaultModel();
            // A checkpoint served from its build keeps the checkpoint's folder name as its model id.
            var servedName = options.ServedModelName ?? (options.Model is { } source && folder != source ? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(source))) : null);
            model = ServedModel.Load(folder, servedName, options.Session);
        }
        catch (FormatException ex)
        {
            throw new StartupException(ex.Message, ex);
        }
        catch (ModelPackageException ex)
        {
            throw new StartupException(ex.Message, ex);
        }
        catch (ExecutionProviderException ex)
        {
            throw new StartupException(ex.Message, ex);
        }

        // Said once at start, on stderr like the other startup lines (logging is not configured yet).
        Console.Error.WriteLine(model.Decoder.DeviceNote is { } note
            ? $"info: model {model.Name} runs on {model.Decoder.Device}: {note}"
            : $"info: model {model.Name} runs on {model.Decoder.Device}");
        if (model.Decoder.GraphNote is { } graphNote)
        {
            Console.Error.WriteLine($"info: model {model.Name}: {graphNote} (--onnx-graph-rewrite false runs the graph as it is)");
        }

        if (model.Decoder is SplitDecoderModel split)
        {
            LogOffloading(model, split, options.Scheduler);
        }

        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = options.Limits.MaxRequestBodySize);
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddSingleton(options.Limits);
        builder.Services.AddSingleton<StructuredOutput>();
        builder.Services.AddSingleton(LoadChatTemplate(model, options.ChatTemplate));
        builder.Services.AddCors(cors => cors.AddDefaultPolicy(policy => ConfigureCors(policy, http)));
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(static provider => new ServingState(
            provider.GetRequiredService<ContinuousBatchScheduler>(),
            provider.GetRequiredService<ServerOptions>().EngineStallTimeout));
        builder.Services.AddHostedService<DrainService>();

        // The host waits for the drain, then for the web server and the engine to stop.
        builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = options.ShutdownTimeout + TimeSpan.FromSeconds(15));
        AddLogging(builder, options);
        AddTelemetry(builder);
        try
        {
            builder.Services.AddInferenceEngine(model, options.Scheduler);
        }
        catch (InvalidOperationException ex)
        {
            model.Dispose();
            throw new StartupException(ex.Message, ex);
        }

        configure?.Invoke(builder);
        var app = builder.Build();
        app.UseMiddleware<RequestIdMiddleware>();

        // Defence in depth: a bug that escapes a handler still answers in OpenAI's envelope, not an empty 500.
        app.UseExceptionHandler(static error => error.Run(static context => OpenAiErrors.WriteAsync(context, StatusCodes.Status500InternalServerError, "The server failed while handling this request.", "server_error", null, "internal_error")));
        app.UseCors();
        app.UseMiddleware<ServingGate>();
        if (http.ApiKeys.Count > 0)
        {
            app.UseMiddleware<ApiKeyMiddleware>(http.ApiKeys);
        }

        MapEndpoints(app, options);
        if (grpc)
        {
            GrpcHosting.MapInferenceGrpc(app);
        }

        return app;
    }

    private static void MapEndpoints(WebApplication app, ServerOptions options)
    {
        var startedAt = app.Services.GetRequiredService<TimeProvider>().GetUtcNow();
        var completionsLogger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("InferenceServer.Completions");
        var logPrompts = options.LogRequests;
        app.MapPost("/v1/completions", (HttpContext context, ContinuousBatchScheduler scheduler, StructuredOutput structured, TimeProvider time) => CompletionsEndpoint.HandleAsync(context, scheduler, structured, time, completionsLogger, logPrompts));
        app.MapPost("/v1/chat/completions", (HttpContext context, ContinuousBatchScheduler scheduler, ChatPromptRenderer renderer, StructuredOutput structured, TimeProvider time) => ChatCompletionsEndpoint.HandleAsync(context, scheduler, renderer, structured, time, completionsLogger, logPrompts));
        app.MapGet("/v1/models", (HttpContext context, ServedModel model) => ModelsEndpoint.ListAsync(context, model, startedAt));
        app.MapGet("/v1/models/{id}", (HttpContext context, string id, ServedModel model) => ModelsEndpoint.GetAsync(context, id, model, startedAt));
        app.MapPost("/tokenize", (HttpContext context, ServedModel model, ChatPromptRenderer renderer) => TokenizeEndpoint.TokenizeAsync(context, model, renderer));
        app.MapPost("/detokenize", (HttpContext context, ServedModel model) => TokenizeEndpoint.DetokenizeAsync(context, model));
        app.MapGet("/health/live", () => Results.Text("live"));
        app.MapGet("/health/ready", static (ServingState state) => state.NotReadyReason is { } reason
            ? Results.Text(reason, statusCode: StatusCodes.Status503ServiceUnavailable)
            : Results.Text("ready"));
        var scrape = app.Services.GetRequiredService<PrometheusScrapeEndpoint>();
        app.MapGet("/metrics", scrape.HandleAsync);
        app.MapFallback(static context => OpenAiErrors.WriteAsync(context, StatusCodes.Status404NotFound, $"No route for {context.Request.Method} {context.Request.Path}.", "invalid_request_error"));
    }

    /// <summary>The startup lines of attention offloading (ADR 0005): which layers run where, and how much KV each memory device holds.</summary>
    private static void LogOffloading(ServedModel model, SplitDecoderModel split, SchedulerOptions scheduler)
    {
        Console.Error.WriteLine($"info: model {model.Name}: attention offloaded: {split.SegmentCount} dense segments on {split.Device}, attention of layers [{string.Join(", ", split.AttentionLayers)}] on {string.Join(" + ", split.AttentionDevices)}");
        int blocks;
        try
        {
            blocks = ContinuousBatchScheduler.PlanKvBlocks(model, scheduler);
        }
        catch (InvalidOperationException)
        {
            return; // The engine says why when it starts.
        }

        var devices = split.AttentionDevices;
        var blockBytes = model.Spec.KvBytesPerToken * split.ChooseBlockSize(scheduler.BlockSize);
        var first = 0;
        for (var i = 0; i < devices.Count; i++)
        {
            var count = SplitDecoderModel.PoolBlocks(blocks, devices.Count, i);
            Console.Error.WriteLine($"info: model {model.Name}: KV pool {i} on {devices[i]}: blocks [{first}, {first + count}), {count * blockBytes / (1024.0 * 1024.0):F1} MiB");
            first += count;
        }
    }

    private static ChatPromptRenderer LoadChatTemplate(ServedModel model, string? overridePath)
    {
        try
        {
            return new ChatPromptRenderer(model, overridePath);
        }
        catch (ChatTemplateException ex)
        {
            model.Dispose();
            throw new StartupException($"{overridePath ?? model.Package.TokenizerConfigPath}: chat template: {ex.Message}", ex);
        }
        catch (IOException ex)
        {
            model.Dispose();
            throw new StartupException($"{overridePath}: --chat-template cannot be read: {ex.Message}", ex);
        }
    }

    private static void ConfigureCors(Microsoft.AspNetCore.Cors.Infrastructure.CorsPolicyBuilder policy, HttpOptions http)
    {
        if (http.AllowedOrigins.Contains("*"))
        {
            // "*" with credentials is not allowed by browsers; echo the caller's origin instead, as Starlette (vLLM) does.
            _ = http.AllowCredentials ? policy.SetIsOriginAllowed(static _ => true) : policy.AllowAnyOrigin();
        }
        else
        {
            policy.WithOrigins([.. http.AllowedOrigins]);
        }

        _ = http.AllowedMethods.Contains("*") ? policy.AllowAnyMethod() : policy.WithMethods([.. http.AllowedMethods]);
        _ = http.AllowedHeaders.Contains("*") ? policy.AllowAnyHeader() : policy.WithHeaders([.. http.AllowedHeaders]);
        policy.WithExposedHeaders(RequestIdMiddleware.HeaderName);
        if (http.AllowCredentials)
        {
            policy.AllowCredentials();
        }
    }

    /// <summary>Finds <see cref="DefaultModelFolder"/> beside the app or in a parent of the app or the working directory.</summary>
    internal static string FindDefaultModel()
    {
        foreach (var start in (string[])[AppContext.BaseDirectory, Directory.GetCurrentDirectory()])
        {
            for (var directory = new DirectoryInfo(start); directory is not null; directory = directory.Parent)
            {
                var candidate = Path.Combine(directory.FullName, DefaultModelFolder);
                if (File.Exists(Path.Combine(candidate, "config.json")))
                {
                    return candidate;
                }
            }
        }

        throw new StartupException($"{DefaultModelFolder}: the default model was not found beside the app or in any parent folder; pass --model <folder>");
    }
}
