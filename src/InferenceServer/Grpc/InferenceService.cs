// Licensed under the MIT License. See LICENSE in the repository root.
using System.Threading.Channels;
using Grpc.Core;
using InferenceServer.Engine;
using InferenceServer.Engine.Requests;
using InferenceServer.Engine.Scheduling;
using InferenceServer.Grpc.V1;
using InferenceServer.Hosting;

namespace InferenceServer.Grpc;

/// <summary>
/// <c>inference.v1.Inference</c>: generation, abort, tokenizer and model metadata over the one engine the HTTP API
/// also serves. Created per call by gRPC; the state it shares lives in singletons.
/// </summary>
internal sealed class InferenceService(
    ContinuousBatchScheduler scheduler,
    ServingState serving,
    ActiveGenerations active,
    GrpcServerOptions options,
    TimeProvider time,
    ServingLimits limits,
    ILogger<InferenceService> logger) : V1.Inference.InferenceBase
{
    /// <inheritdoc />
    public override async Task Generate(GenerateRequest request, IServerStreamWriter<GenerateResponse> responseStream, ServerCallContext context)
    {
        var arrival = time.GetTimestamp();
        // Not admitted (draining, engine stopped or stalled): refuse with the reason. An unhealthy engine answers below.
        if (!serving.AdmitsRequests && serving.NotReadyReason is { } reason)
        {
            throw GrpcErrors.Unavailable(reason == "draining"
                ? "The server is draining and takes no new requests; retry on another replica."
                : $"This replica is not accepting requests ({reason}); retry on another replica.");
        }

        // Admission before any tokenization: an engine refusing work or a full queue answers at once.
        if (!scheduler.AcceptsWork)
        {
            throw GrpcErrors.Unavailable("The engine is not accepting work: it is stopping, or unhealthy after repeated model failures; retry later.");
        }

        if (scheduler.IsQueueFull)
        {
            GrpcLog.QueueFull(logger, request.RequestId);
            throw GrpcErrors.QueueFull();
        }

        var model = scheduler.Model;
        var validated = GenerateRequestMapper.Map(request, model);
        var requestId = request.RequestId.Length > 0 ? request.RequestId : "gen-" + Guid.NewGuid().ToString("N");
        // The call's own deadline cancels context.CancellationToken; the server's maximum applies on top of it.
        using var serverDeadline = new CancellationTokenSource(limits.MaxRequestTimeout, time);
        using var lifetime = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, serverDeadline.Token);
        if (!active.TryAdd(requestId, lifetime, out var entry))
        {
            throw new RpcException(new Status(StatusCode.AlreadyExists, $"A request with request_id '{requestId}' is already running; choose a unique id or leave it empty."));
        }

        GenerationStream? stream = null;
        try
        {
            var group = validated.N > 1 ? new object() : null;
            var choices = new ChannelReader<GenerationUpdate>[validated.N];
            var generations = new GenerationRequest[validated.N];
            for (var k = 0; k < validated.N; k++)
            {
                generations[k] = new GenerationRequest
                {
                    RequestId = validated.N > 1 ? $"{requestId}-{k}" : requestId,
                    PromptTokens = validated.PromptTokens,
                    Sampling = validated.Sampling.ForChoice(k, validated.N),
                    Stop = validated.Stop,
                    Priority = validated.Priority,
                    PrefixGroup = group,
                };
            }

            switch (scheduler.Submit(generations, choices, lifetime.Token))
            {
                case SubmitResult.QueueFull:
                    GrpcLog.QueueFull(logger, requestId);
                    throw GrpcErrors.QueueFull();
                case SubmitResult.Unavailable:
                    throw GrpcErrors.Unavailable("The engine is not accepting work: it is stopping, or unhealthy after repeated model failures; retry later.");
            }

            stream = new GenerationStream(choices, options.MaxBufferedChunks, time, arrival, lifetime);
            await context.WriteResponseHeadersAsync(new Metadata { { GrpcErrors.RequestIdHeader, requestId } }).ConfigureAwait(false);
            await stream.WriteToAsync(responseStream, requestId, entry, context.CancellationToken).ConfigureAwait(false);
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.Unavailable && serverDeadline.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
            throw new RpcException(new Status(StatusCode.DeadlineExceeded, $"The request did not finish within the server's maximum of {limits.MaxRequestTimeout.TotalSeconds} s (--max-request-timeout); its work was stopped."));
        }
        finally
        {
            active.Remove(requestId, entry);
            if (stream?.Overflowed == true)
            {
                GrpcLog.SlowClientAborted(logger, requestId, options.MaxBufferedChunks);
            }

            // The same one line per finished request as the HTTP API's.
            var status = context.CancellationToken.IsCancellationRequested ? 499 : (int)context.Status.StatusCode;
            ServerLog.RequestFinished(logger, requestId, scheduler.Model.Name, stream?.Usage ?? new OpenAi.UsageCounter(), time.GetElapsedTime(arrival), status);

            // Whatever ended the call, nothing keeps generating for it.
            await lifetime.CancelAsync().ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public override Task<AbortResponse> Abort(AbortRequest request, ServerCallContext context)
    {
        if (request.RequestId.Length == 0)
        {
            throw GrpcErrors.InvalidArgument("request_id", "must not be empty.");
        }

        if (!active.TryAbort(request.RequestId))
        {
            throw new RpcException(new Status(StatusCode.NotFound, $"No running request has request_id '{request.RequestId}'; it may have finished already."));
        }

        GrpcLog.Aborted(logger, request.RequestId);
        return Task.FromResult(new AbortResponse());
    }

    /// <inheritdoc />
    public override Task<TokenizeResponse> Tokenize(TokenizeRequest request, ServerCallContext context)
    {
        var model = scheduler.Model;
        GenerateRequestMapper.CheckModel(request.Model, model);
        var tokenizer = model.Tokenizer ?? throw GrpcErrors.NoTokenizer(model.Name);
        var response = new TokenizeResponse();
        foreach (var id in tokenizer.Encode(request.Text, addSpecialTokens: !request.HasAddSpecialTokens || request.AddSpecialTokens))
        {
            response.TokenIds.Add((uint)id);
        }

        return Task.FromResult(response);
    }

    /// <inheritdoc />
    public override Task<DetokenizeResponse> Detokenize(DetokenizeRequest request, ServerCallContext context)
    {
        var model = scheduler.Model;
        GenerateRequestMapper.CheckModel(request.Model, model);
        var tokenizer = model.Tokenizer ?? throw GrpcErrors.NoTokenizer(model.Name);
        var vocab = model.Spec.VocabularySize;
        var ids = new int[request.TokenIds.Count];
        for (var i = 0; i < ids.Length; i++)
        {
            var id = request.TokenIds[i];
            ids[i] = id < (uint)vocab ? (int)id : throw GrpcErrors.InvalidArgument("token_ids", $"token id {id} is outside the vocabulary [0, {vocab - 1}].");
        }

        var text = tokenizer.Decode(ids, skipSpecialTokens: !request.HasSkipSpecialTokens || request.SkipSpecialTokens);
        return Task.FromResult(new DetokenizeResponse { Text = text });
    }

    /// <inheritdoc />
    public override Task<ListModelsResponse> ListModels(ListModelsRequest request, ServerCallContext context)
        => Task.FromResult(new ListModelsResponse { Models = { Describe(scheduler.Model) } });

    /// <inheritdoc />
    public override Task<ModelInfo> GetModelInfo(GetModelInfoRequest request, ServerCallContext context)
    {
        GenerateRequestMapper.CheckModel(request.Model, scheduler.Model);
        return Task.FromResult(Describe(scheduler.Model));
    }

    private static ModelInfo Describe(ServedModel model)
    {
        var spec = model.Spec;
        var info = new ModelInfo
        {
            Id = model.Name,
            ContextLength = (uint)spec.ContextLength,
            VocabularySize = (uint)spec.VocabularySize,
            HasTokenizer = model.Tokenizer is not null,
            KvElementType = spec.ElementType,
            KvBytesPerToken = (ulong)spec.KvBytesPerToken,
        };
        foreach (var id in model.EosTokenIds)
        {
            info.EosTokenIds.Add((uint)id);
        }

        info.KvDevices.Add(model.Decoder.KvDevices);

        foreach (var layer in spec.KvLayers)
        {
            info.AttentionLayers.Add(new AttentionLayer
            {
                Index = (uint)layer.Layer,
                KeyHeads = (uint)layer.KeyHeads,
                KeyHeadSize = (uint)layer.KeyWidth,
                ValueHeads = (uint)layer.ValueHeads,
                ValueHeadSize = (uint)layer.ValueWidth,
            });
        }

        return info;
    }
}
