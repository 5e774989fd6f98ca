// Licensed under the MIT License. See LICENSE in the repository root.
using Grpc.Core;
using Grpc.Health.V1;
using InferenceServer.Serving;

namespace InferenceServer.Grpc;

/// <summary>
/// The standard <c>grpc.health.v1.Health</c> service over <see cref="ServingState"/>: SERVING while the engine runs and
/// the server is not draining, NOT_SERVING otherwise. It answers for the whole server (<c>""</c>) and for
/// <c>inference.v1.Inference</c>; other names are NOT_FOUND (Check) or SERVICE_UNKNOWN (Watch), as the protocol says.
/// A Watch stream sends each change; once the server drains it sends NOT_SERVING and ends, so that it does not hold
/// up shutdown.
/// </summary>
internal sealed class HealthService(ServingState serving, TimeProvider time) : Health.HealthBase
{
    /// <summary>How often a Watch re-reads the scheduler's state (draining itself is signalled at once).</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(1);

    /// <summary>The service name of the API, as clients ask for it.</summary>
    public static readonly string InferenceServiceName = V1.Inference.Descriptor.FullName;

    /// <inheritdoc />
    public override Task<HealthCheckResponse> Check(HealthCheckRequest request, ServerCallContext context)
    {
        if (!IsKnown(request.Service))
        {
            throw new RpcException(new Status(StatusCode.NotFound, $"Unknown service '{request.Service}'; ask for '' (the server) or '{InferenceServiceName}'."));
        }

        return Task.FromResult(new HealthCheckResponse { Status = Current() });
    }

    /// <inheritdoc />
    public override async Task Watch(HealthCheckRequest request, IServerStreamWriter<HealthCheckResponse> responseStream, ServerCallContext context)
    {
        var cancellationToken = context.CancellationToken;
        var known = IsKnown(request.Service);
        HealthCheckResponse.Types.ServingStatus? last = null;
        while (!cancellationToken.IsCancellationRequested)
        {
            var changed = serving.Changed;
            var status = known ? Current() : HealthCheckResponse.Types.ServingStatus.ServiceUnknown;
            if (status != last)
            {
                await responseStream.WriteAsync(new HealthCheckResponse { Status = status }, cancellationToken).ConfigureAwait(false);
                last = status;
            }

            if (serving.IsDraining)
            {
                return;
            }

            using var delay = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            await Task.WhenAny(changed, Task.Delay(PollInterval, time, delay.Token)).ConfigureAwait(false);
            await delay.CancelAsync().ConfigureAwait(false);
        }
    }

    private HealthCheckResponse.Types.ServingStatus Current()
        => serving.IsReady ? HealthCheckResponse.Types.ServingStatus.Serving : HealthCheckResponse.Types.ServingStatus.NotServing;

    private static bool IsKnown(string service) => service.Length == 0 || service == InferenceServiceName;
}
