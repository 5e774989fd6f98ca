// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Grpc;
using InferenceServer.Http;
using InferenceServer.Serving;

namespace InferenceServer.Hosting;

/// <summary>Registers and maps the gRPC API: <c>inference.v1.Inference</c>, <c>grpc.health.v1.Health</c> and server reflection.</summary>
internal static class GrpcHosting
{
    /// <summary>
    /// Opens the gRPC port (when <see cref="GrpcServerOptions.Port"/> is set) and registers the services.
    /// Returns false, registering nothing, when the gRPC listener is off.
    /// </summary>
    /// <exception cref="StartupException">The URLs or the TLS certificate are unusable.</exception>
    public static bool AddInferenceGrpc(WebApplicationBuilder builder, GrpcServerOptions options)
    {
        var listener = GrpcListener.Configure(builder, options);
        if (listener is null)
        {
            return false;
        }

        // grpc-dotnet logs a call's end (a status raised, a write after the deadline or the client left) at Information,
        // some with the exception's stack; the server writes its own one line per call. Its errors still show.
        const string GrpcLogLevel = "Logging:LogLevel:Grpc.AspNetCore";
        if (string.IsNullOrEmpty(builder.Configuration[GrpcLogLevel]))
        {
            builder.Configuration[GrpcLogLevel] = "Warning";
        }

        builder.Services.AddGrpc(grpc =>
        {
            grpc.EnableDetailedErrors = false;
            grpc.MaxReceiveMessageSize = options.MaxMessageSize;
        });
        builder.Services.AddGrpcReflection();
        builder.Services.AddSingleton(listener);
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton<ActiveGenerations>();
        return true;
    }

    /// <summary>
    /// Puts <see cref="GrpcPortMiddleware"/> in front of the pipeline: calls on the gRPC port run only the gRPC pipeline
    /// (API key, serving gate, frame checks); nothing else is served there. Call it first, before the HTTP API's middleware.
    /// </summary>
    public static void UseGrpcPort(WebApplication app)
    {
        var listener = app.Services.GetRequiredService<GrpcListener>();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(GrpcAuthenticationMiddleware).FullName!);
        var grpc = ((IApplicationBuilder)app).New();
        grpc.UseMiddleware<GrpcAuthenticationMiddleware>(app.Services.GetRequiredService<ApiKeyVerifier>(), logger);
        grpc.UseMiddleware<ServingGate>();
        grpc.UseMiddleware<GrpcFrameMiddleware>();
        grpc.Run(static context => context.GetEndpoint()!.RequestDelegate!(context));
        var pipeline = grpc.Build();
        app.Use(next => new GrpcPortMiddleware(next, listener, pipeline).InvokeAsync);
    }

    /// <summary>Maps the services registered by <see cref="AddInferenceGrpc"/>.</summary>
    public static void MapInferenceGrpc(WebApplication app)
    {
        app.MapGrpcService<InferenceService>();
        app.MapGrpcService<HealthService>();
        app.MapGrpcReflectionService();
        var listener = app.Services.GetRequiredService<GrpcListener>();
        var logger = app.Services.GetRequiredService<ILogger<InferenceService>>();
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            if (listener.Address is { } address)
            {
                GrpcLog.Listening(logger, address);
            }
        });
    }
}
