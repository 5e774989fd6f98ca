// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Engine;
using InferenceServer.Engine.Scheduling;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the inference engine: the served model, its scheduler, and the hosted service that runs the loop.</summary>
public static class EngineServiceCollectionExtensions
{
    /// <summary>
    /// Adds <paramref name="model"/> and a <see cref="ContinuousBatchScheduler"/> over it. The scheduler is created now, so
    /// an impossible KV-cache size fails here (<see cref="InvalidOperationException"/>) rather than at the first request.
    /// </summary>
    public static IServiceCollection AddInferenceEngine(this IServiceCollection services, ServedModel model, SchedulerOptions options)
    {
        ArgumentNullException.ThrowIfNull(services);
        _ = ContinuousBatchScheduler.PlanKvBlocks(model.Spec, options);
        services.TryAddSingleton(model);
        services.TryAddSingleton(options);
        services.TryAddSingleton(static provider => new ContinuousBatchScheduler(
            provider.GetRequiredService<ServedModel>(),
            provider.GetRequiredService<SchedulerOptions>(),
            provider.GetRequiredService<ILogger<ContinuousBatchScheduler>>(),
            provider.GetService<TimeProvider>()));
        services.AddHostedService<SchedulerHostedService>();
        return services;
    }
}
