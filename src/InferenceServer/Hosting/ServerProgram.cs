// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using InferenceServer.Engine;
using InferenceServer.Engine.Scheduling;
using InferenceServer.Http;
using InferenceServer.Hosting.CommandLine;
using InferenceServer.Observability;
using InferenceServer.Serving;
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

    /// <summary>
    /// Runs the server until shutdown; returns the process exit code: 0, or <see cref="StartupFailure"/> for a bad
    /// command line, option or model. <c>--help</c> and <c>--version</c> print and return 0 without starting anything.
    /// </summary>
    public static async Task<int> RunAsync(string[] args)
    {
        WebApplication app;
        try
        {
            var commandLine = ServerCommandLine.Parse(args);
            if (commandLine.Help)
            {
                await Console.Out.WriteAsync(HelpText.Server()).ConfigureAwait(false);
                return 0;
            }

            if (commandLine.Version)
            {
                await Console.Out.WriteAsync(HelpText.Version()).ConfigureAwait(false);
                return 0;
            }

            app = Build(args);
        }
        catch (StartupException ex)
        {
            using var log = StartupLog.For(args);
            log.Error(ex.Message);
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
        var builder = WebApplication.CreateBuilder(ServerCommandLine.Parse(args).ToConfigurationArgs());
        ServerOptions options;
        HttpOptions http;
        ServedModel model;
        bool grpc;
        try
        {
            options = ServerOptions.FromConfiguration(builder.Configuration);
            http = ServerOptionsBinder.BindHttp(builder.Configuration);
        }
        catch (FormatException ex)
        {
            throw new StartupException(ex.Message, ex);
        }

        using var log = new StartupLog(options.LogFormat);
        try
        {
            // Before the gRPC listener is configured, so that its endpoints get the shared connection limit too.
            ConfigureConnections(builder, options, log);

            // Before the model loads, so that a bad URL or certificate fails fast.
            grpc = GrpcHosting.AddInferenceGrpc(builder, options.Grpc);
            model = LoadModel(options, log);
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

        // Said once at start, like the other startup lines (the logger is not configured yet).
        log.Info(model.Decoder.DeviceNote is { } note
            ? $"model {model.Name} runs on {model.Decoder.Device}: {note}"
            : $"model {model.Name} runs on {model.Decoder.Device}");
        if (model.Decoder.GraphNote is { } graphNote)
        {
            log.Info($"model {model.Name}: {graphNote} (--onnx-graph-rewrite false runs the graph as it is)");
        }

        if (options.Session.Deterministic)
        {
            log.Info(DeterministicNote(model.Decoder, model.Package.GraphKind, options.Session));
        }

        var kvBudget = ApplyModelLimits(model, options, log);

        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = options.Limits.MaxRequestBodySize);
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddSingleton(options.Limits);
        builder.Services.AddSingleton<StructuredOutput>();
        builder.Services.AddSingleton(new ApiKeyVerifier(http.ApiKeys));
        builder.Services.AddSingleton(LoadChatTemplate(model, options.ChatTemplate));
        builder.Services.AddCors(cors => cors.AddDefaultPolicy(policy => ConfigureCors(policy, http)));
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton<IInferenceEngine>(static provider => new SchedulerEngine(provider.GetRequiredService<ContinuousBatchScheduler>()));
        builder.Services.AddSingleton(static provider => new ServingState(
            provider.GetRequiredService<IInferenceEngine>(),
            provider.GetRequiredService<ServerOptions>().EngineStallTimeout,
            provider.GetRequiredService<ServerOptions>().LivenessStallTimeout));
        builder.Services.AddHostedService<DrainService>();

        // The host waits for the drain, then for the web server and the engine to stop.
        builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = options.ShutdownTimeout + TimeSpan.FromSeconds(15));
        ServerTelemetry.AddLogging(builder, options.LogFormat);
        ServerTelemetry.AddTelemetry(builder);
        IModelRunner runner;
        try
        {
            // The KV negotiation, once: everything after reads the runner's block count and size.
            runner = model.CreateRunner(kvBudget);
        }
        catch (InvalidOperationException ex)
        {
            model.Dispose();
            throw new StartupException(ex.Message, ex);
        }

        if (model.Decoder is SplitDecoderModel split)
        {
            LogOffloading(model, split, runner, log, options.Session.SplitOneStream == true);
        }

        builder.Services.AddInferenceEngine(model, runner, options.Scheduler);

        configure?.Invoke(builder);
        var app = builder.Build();
        if (grpc)
        {
            // First: the gRPC port runs only the gRPC pipeline (its own API key check), none of the HTTP API's.
            GrpcHosting.UseGrpcPort(app);
        }

        app.UseMiddleware<RequestIdMiddleware>();

        // Defence in depth: a bug that escapes a handler still answers in OpenAI's envelope, not an empty 500.
        // A malformed request Kestrel detects late (while a handler reads the body) keeps its 4xx.
        app.UseExceptionHandler(static error => error.Run(static context =>
            context.Features.Get<Microsoft.AspNetCore.Diagnostics.IExceptionHandlerFeature>()?.Error is BadHttpRequestException bad
                ? OpenAiErrors.WriteAsync(context, bad.StatusCode, $"The request could not be read: {bad.Message}", "invalid_request_error")
                : OpenAiErrors.WriteAsync(context, StatusCodes.Status500InternalServerError, "The server failed while handling this request.", "server_error", null, "internal_error")));
        app.UseCors();
        app.UseMiddleware<ServingGate>();
        if (http.ApiKeys.Count > 0)
        {
            app.UseMiddleware<ApiKeyMiddleware>();
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
        app.MapPost("/v1/completions", (HttpContext context, IInferenceEngine engine, ServingLimits limits, StructuredOutput structured, TimeProvider time) => CompletionsEndpoint.HandleAsync(context, engine, limits, structured, time, completionsLogger, logPrompts));
        app.MapPost("/v1/chat/completions", (HttpContext context, IInferenceEngine engine, ServingLimits limits, ChatPromptRenderer renderer, StructuredOutput structured, TimeProvider time) => ChatCompletionsEndpoint.HandleAsync(context, engine, limits, renderer, structured, time, completionsLogger, logPrompts));
        app.MapPost("/v1/responses", (HttpContext context, IInferenceEngine engine, ServingLimits limits, ChatPromptRenderer renderer, StructuredOutput structured, TimeProvider time) => OpenAi.Responses.ResponsesEndpoint.HandleAsync(context, engine, limits, renderer, structured, time, completionsLogger, logPrompts));
        app.MapGet("/v1/models", (HttpContext context, ServedModel model) => ModelsEndpoint.ListAsync(context, model, startedAt));
        app.MapGet("/v1/models/{id}", (HttpContext context, string id, ServedModel model) => ModelsEndpoint.GetAsync(context, id, model, startedAt));
        app.MapPost("/tokenize", (HttpContext context, ServedModel model, ChatPromptRenderer renderer) => TokenizeEndpoint.TokenizeAsync(context, model, renderer));
        app.MapPost("/detokenize", (HttpContext context, ServedModel model) => TokenizeEndpoint.DetokenizeAsync(context, model));

        // With --api-key, only endpoints marked AllowAnonymous are open (ApiKeyMiddleware): the probes, and /metrics unless --metrics-require-key.
        HealthEndpoints.Map(app);
        var scrape = app.Services.GetRequiredService<PrometheusScrapeEndpoint>();
        var metrics = app.MapGet("/metrics", scrape.HandleAsync);
        if (!options.MetricsRequireKey)
        {
            metrics.AllowAnonymous();
        }

        app.MapFallback(static context => OpenAiErrors.WriteAsync(context, StatusCodes.Status404NotFound, $"No route for {context.Request.Method} {context.Request.Path}.", "invalid_request_error"));
    }

    /// <summary>The startup line of <c>--deterministic</c>: what it does on this model's runner, and what it costs.</summary>
    internal static string DeterministicNote(IDecoderModel decoder, string? graphKind, OnnxSessionOptions session) =>
        graphKind == "paged-v1"
            ? session.CudaGraphs
                ? string.Create(CultureInfo.InvariantCulture, $"--deterministic: batch-invariant greedy decoding: every decode step runs at one fixed captured shape ({session.CudaGraphMaxBatch} rows padded, the whole context's block table), prompt rows run alone in chunks ending at multiples of {OnnxSessionOptions.DeterministicChunkTokens} positions, prefix caching is off; this costs throughput (a lone request decodes at the full batch's step time)")
                : "--deterministic: needs --cuda-graphs true (the fixed decode shape is a captured graph); steps run as usual, prefix caching is off"
            : $"--deterministic: on {decoder.Device} steps run as usual (the fixed-shape decode is the paged CUDA runner's); prefix caching is off";

    /// <summary>The startup lines of attention offloading (ADR 0005): which layers run where, and how much KV each memory device holds.</summary>
    private static void LogOffloading(ServedModel model, SplitDecoderModel split, IModelRunner runner, StartupLog log, bool oneStreamRequested)
    {
        log.Info($"model {model.Name}: attention offloaded: {split.SegmentCount} dense segments on {split.Device}, attention of layers [{string.Join(", ", split.AttentionLayers)}] on {string.Join(" + ", split.AttentionDevices)}");
        if (split.CudaAttention && split.AttentionDevices[0] == split.Device)
        {
            log.Info($"model {model.Name}: local split: attention beside the segments on {split.Device}, q, k, v and outputs stay on the device (no offload bytes)");
        }
        else if (split.CudaAttention)
        {
            log.Info($"model {model.Name}: attention on {split.AttentionDevices[0]}: q, k, v go from {split.Device} by peer copies and the outputs come back, per layer and step");
        }
        else if (split.MixedAttention)
        {
            log.Info($"model {model.Name}: mixed placement: the {split.Device} pool attends on the device with log-sum-exp, merged with the host pools' parts of sequences that span them; a step whose KV is all on {split.Device} copies nothing (the host KV tier is off with a GPU pool)");
        }

        var hostOnly = split.AttentionDevices.All(static d => !d.IsCuda);
        if (hostOnly)
        {
            log.Info($"model {model.Name}: attention overlap (ADR 0010): {split.Overlap switch { AttentionOverlap.On => "on: every step of two or more rows runs as two micro-batches", AttentionOverlap.Off => "off", _ => "auto: two micro-batches while host attention takes longer than the dense segments" }}");
        }

        if (split.PrefillOnCompute)
        {
            log.Info($"model {model.Name}: prefill attention on {split.Device} (--prefill-attention): rows that start at position 0 attend over themselves there (GroupQueryAttention); the host pools only store their KV");
        }

        if (!hostOnly && split.Overlap == AttentionOverlap.On)
        {
            log.Warning($"model {model.Name}: --attention-overlap on has no effect with a cuda:N attention device (only host attention overlaps, ADR 0010)");
        }

        if (split.OneStream)
        {
            log.Info($"model {model.Name}: --split-one-stream: the step's segments and GPU attention are queued on one CUDA stream, synchronized once per step");
        }

        if (split.CapturesSteps)
        {
            log.Info($"model {model.Name}: --cuda-graphs: greedy decode steps of up to {split.CudaGraphMaxBatch} rows run as CUDA graphs, the whole step (every segment and attention run) captured once per padded batch and block-table width (ADR 0011)");
        }
        else if (oneStreamRequested)
        {
            log.Warning($"model {model.Name}: --split-one-stream has no effect here (it needs a CUDA --device, and attention on that GPU or on cpu)");
        }

        var devices = split.AttentionDevices;
        var pools = SplitDecoderModel.PoolBlockCounts(runner);
        var blockBytes = model.Spec.KvBytesPerToken * runner.BlockSize;
        var first = 0;
        for (var i = 0; i < devices.Count; i++)
        {
            var count = pools[i];
            log.Info($"model {model.Name}: KV pool {i} on {devices[i]}: blocks [{first}, {first + count}), {count * blockBytes / (1024.0 * 1024.0):F1} MiB of {model.Spec.ElementType.ToName()}");
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
