// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics.Metrics;
using InferenceServer.Engine;
using InferenceServer.Engine.Diagnostics;
using InferenceServer.Engine.Scheduling;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the inference engine: the served model, its scheduler, and the hosted service that runs the loop.</summary>
public static class EngineServiceCollectionExtensions
{
    /// <summary>
    /// Adds <paramref name="model"/>, a <see cref="ContinuousBatchScheduler"/> over it and its <see cref="InferenceMetrics"/>
    /// (needs an <see cref="IMeterFactory"/>: <c>AddMetrics()</c>, which every host adds). The scheduler is created now, so
    /// an impossible KV-cache size fails here (<see cref="InvalidOperationException"/>) rather than at the first request.
    /// </summary>
    public static IServiceCollection AddInferenceEngine(this IServiceCollection services, ServedModel model, SchedulerOptions options)
    {
        ArgumentNullException.ThrowIfNull(services);
        _ = ContinuousBatchScheduler.PlanKvBlocks(model, options);
        services.TryAddSingleton(model);
        services.TryAddSingleton(options);
        services.TryAddSingleton(static provider => new InferenceMetrics(provider.GetRequiredService<IMeterFactory>()));
        services.TryAddSingleton(static provider => new ContinuousBatchScheduler(
            provider.GetRequiredService<ServedModel>(),
            provider.GetRequiredService<SchedulerOptions>(),
            provider.GetRequiredService<ILogger<ContinuousBatchScheduler>>(),
            provider.GetRequiredService<InferenceMetrics>(),
            provider.GetService<TimeProvider>()));
        services.AddHostedService<SchedulerHostedService>();
        return services;
    }
}
