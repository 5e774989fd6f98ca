// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Hosting;

namespace InferenceServer.Grpc;

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

        builder.Services.AddGrpc(grpc => grpc.EnableDetailedErrors = false);
        builder.Services.AddGrpcReflection();
        builder.Services.AddSingleton(listener);
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton<ActiveGenerations>();
        return true;
    }

    /// <summary>Maps the services registered by <see cref="AddInferenceGrpc"/>.</summary>
    public static void MapInferenceGrpc(WebApplication app)
    {
        app.UseWhen(
            static context => context.Request.Path.Equals(MalformedMessageMiddleware.GeneratePath, StringComparison.Ordinal),
            static branch => branch.UseMiddleware<MalformedMessageMiddleware>());
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
