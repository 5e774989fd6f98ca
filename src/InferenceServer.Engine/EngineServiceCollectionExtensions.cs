// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics.Metrics;
using InferenceServer.Engine;
using InferenceServer.Engine.Diagnostics;
using InferenceServer.Engine.Scheduling;
using InferenceServer.Onnx.Runtime;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the inference engine: the served model, its scheduler, and the hosted service that runs the loop.</summary>
public static class EngineServiceCollectionExtensions
{
    /// <summary>
    /// Adds <paramref name="model"/>, its <paramref name="runner"/> (the KV negotiation's result:
    /// <see cref="ServedModel.CreateRunner"/>, called once at startup), a <see cref="ContinuousBatchScheduler"/> over them,
    /// which owns and disposes the runner, and its <see cref="InferenceMetrics"/> (needs an <see cref="IMeterFactory"/>:
    /// <c>AddMetrics()</c>, which every host adds). The runner is an <see cref="IModelRunner"/> service, so a test can
    /// wrap it (replace the registration) before the scheduler is created.
    /// </summary>
    public static IServiceCollection AddInferenceEngine(this IServiceCollection services, ServedModel model, IModelRunner runner, SchedulerOptions options)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(runner);
        ArgumentNullException.ThrowIfNull(options);
        services.TryAddSingleton(model);
        services.TryAddSingleton(runner);
        services.TryAddSingleton(options);
        services.TryAddSingleton(static provider => new InferenceMetrics(provider.GetRequiredService<IMeterFactory>()));
        services.TryAddSingleton(static provider => new ContinuousBatchScheduler(
            provider.GetRequiredService<ServedModel>(),
            provider.GetRequiredService<IModelRunner>(),
            provider.GetRequiredService<SchedulerOptions>(),
            provider.GetRequiredService<ILogger<ContinuousBatchScheduler>>(),
            provider.GetRequiredService<InferenceMetrics>(),
            provider.GetService<TimeProvider>()));
        services.AddHostedService<SchedulerHostedService>();
        return services;
    }
}
