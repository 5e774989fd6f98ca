// Licensed under the MIT License. See LICENSE in the repository root.
using System.Threading.Channels;
using Grpc.Core;
using InferenceServer.Engine;
using InferenceServer.Engine.Requests;
using InferenceServer.Engine.Scheduling;
using InferenceServer.Grpc.V1;
using InferenceServer.Onnx.Runtime;
using InferenceServer.Serving;

namespace InferenceServer.Grpc;

/// <summary>
/// <c>inference.v1.Inference</c>: generation, abort, tokenizer and model metadata over the one engine the HTTP API
/// also serves. Created per call by gRPC; the state it shares lives in singletons.
/// </summary>
internal sealed class InferenceService(
    IInferenceEngine engine,
    ServingState serving,
    ActiveGenerations active,
    GrpcServerOptions options,
    TimeProvider time,
    ServingLimits limits,
    ILogger<InferenceService> logger) : V1.Inference.InferenceBase
{
    /// <summary>The status logged for a call whose client went away (nginx's and the HTTP API's 499).</summary>
    public const int ClientClosedRequest = 499;

    /// <summary>How close to its deadline a call the client cancelled counts as having hit the deadline.</summary>
    private static readonly TimeSpan DeadlineSlack = TimeSpan.FromSeconds(1);

    /// <summary>Longest wait, after a call ends, for the engine's final counts of its choices.</summary>
    private static readonly TimeSpan FinalCountsTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Longest wait, after a write fails, for the call's cancellation that explains the failure.</summary>
    private static readonly TimeSpan CancellationGrace = TimeSpan.FromSeconds(1);

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
        if (!engine.AcceptsWork)
        {
            throw GrpcErrors.Unavailable("The engine is not accepting work: it is stopping, or unhealthy after repeated model failures; retry later.");
        }

        if (engine.IsQueueFull)
        {
            GrpcLog.QueueFull(logger, request.RequestId);
            throw GrpcErrors.QueueFull();
        }

        var model = engine.Model;
        var validated = GenerateRequestMapper.Map(request, model);
        var http = context.GetHttpContext();
        var caller = http.Features.Get<GrpcCaller>() ?? GrpcCaller.Anonymous;
        var (requestId, scope) = ChooseRequestId(request, http, caller);
        http.TraceIdentifier = requestId;
        // The call's own deadline cancels context.CancellationToken; the server's maximum applies on top of it.
        using var serverDeadline = new CancellationTokenSource(limits.MaxRequestTimeout, time);
        using var lifetime = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, serverDeadline.Token);
        if (!active.TryAdd(scope, requestId, lifetime, out var entry))
        {
            throw new RpcException(new Status(StatusCode.AlreadyExists, $"A request with request_id '{requestId}' is already running; choose a unique id or leave it empty."));
        }

        GenerationStream? stream = null;
        // Until the call ends normally or with a known status, an escaping exception is logged as UNKNOWN.
        var status = StatusCode.Unknown;
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

            switch (engine.Submit(generations, choices, lifetime.Token))
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
            status = StatusCode.OK;
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.Unavailable && serverDeadline.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
            status = StatusCode.DeadlineExceeded;
            throw new RpcException(new Status(StatusCode.DeadlineExceeded, $"The request did not finish within the server's maximum of {limits.MaxRequestTimeout.TotalSeconds} s (--max-request-timeout); its work was stopped."));
        }
        catch (RpcException ex)
        {
            status = ex.StatusCode;
            throw;
        }
        catch (Exception ex) when (ex is not RpcException)
        {
            // The call's deadline passed (grpc-timeout, from a client library or a raw header) or the client went away:
            // a cancelled wait, or a write to a response gRPC has already ended. Neither is a server fault: no
            // exception (with its stack) for gRPC to log, only the request's line below. The failed write can come first:
            // at the deadline gRPC may end the response before it cancels the call's token, and Kestrel cancels a reset
            // stream's token from the thread pool after failing its writes (CI saw both lines say UNKNOWN once). So a
            // failure waits, bounded, for the cancellation that explains it; only without one is it a fault.
            var explained = DeadlinePassed(context) || await CancelledSoonAsync(context.CancellationToken).ConfigureAwait(false) || DeadlinePassed(context);
            if (!explained)
            {
                throw;
            }

            if (DeadlinePassed(context))
            {
                status = StatusCode.DeadlineExceeded;
                throw new RpcException(new Status(StatusCode.DeadlineExceeded, "The call's deadline (grpc-timeout) passed before the request finished; its work was stopped."));
            }

            status = StatusCode.Cancelled;
        }
        finally
        {
            active.Remove(entry);

            // Whatever ended the call, nothing keeps generating for it; the engine ends each choice with its final counts.
            await lifetime.CancelAsync().ConfigureAwait(false);
            if (stream is not null)
            {
                await WaitForFinalCountsAsync(stream).ConfigureAwait(false);
                if (stream.Overflowed)
                {
                    GrpcLog.SlowClientAborted(logger, requestId, options.MaxBufferedChunks);
                }
            }

            // The same one line per finished request as the HTTP API's: the gRPC status code, or 499 when the client went away.
            var logged = status == StatusCode.Cancelled && !entry.IsAborted ? ClientClosedRequest : (int)status;
            ServingLog.RequestFinished(logger, requestId, engine.Model.Name, stream?.Usage ?? new UsageCounter(), time.GetElapsedTime(arrival), logged);
        }
    }

    /// <inheritdoc />
    public override Task<AbortResponse> Abort(AbortRequest request, ServerCallContext context)
    {
        if (request.RequestId.Length == 0)
        {
            throw GrpcErrors.InvalidArgument("request_id", "must not be empty.");
        }

        // Only the caller's own ids (and, without --api-key, server-issued ones): NOT_FOUND says nothing about other callers' ids.
        var caller = context.GetHttpContext().Features.Get<GrpcCaller>() ?? GrpcCaller.Anonymous;
        if (!active.TryAbort(caller.Scope, request.RequestId) && (caller.IssuedScope == caller.Scope || !active.TryAbort(caller.IssuedScope, request.RequestId)))
        {
            throw new RpcException(new Status(StatusCode.NotFound, $"None of your running requests has request_id '{request.RequestId}'; it may have finished already."));
        }

        GrpcLog.Aborted(logger, request.RequestId);
        return Task.FromResult(new AbortResponse());
    }

    /// <inheritdoc />
    public override Task<TokenizeResponse> Tokenize(TokenizeRequest request, ServerCallContext context)
    {
        var model = engine.Model;
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
        var model = engine.Model;
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
        => Task.FromResult(new ListModelsResponse { Models = { Describe(engine.Model) } });

    /// <inheritdoc />
    public override Task<ModelInfo> GetModelInfo(GetModelInfoRequest request, ServerCallContext context)
    {
        GenerateRequestMapper.CheckModel(request.Model, engine.Model);
        return Task.FromResult(Describe(engine.Model));
    }

    /// <summary>
    /// The call's request id and the scope it is registered in: <c>request_id</c> when set, else the caller's
    /// <c>x-request-id</c> metadata when usable (1 to 128 visible ASCII characters, as on the HTTP API), both in the
    /// caller's scope; else a server-issued <c>gen-</c> id in the scope the server issues ids to this caller in.
    /// </summary>
    private static (string RequestId, string Scope) ChooseRequestId(GenerateRequest request, HttpContext http, GrpcCaller caller)
    {
        if (request.RequestId.Length > 0)
        {
            return (request.RequestId, caller.Scope);
        }

        var supplied = http.Request.Headers[GrpcErrors.RequestIdHeader];
        return supplied.Count == 1 && RequestIds.IsUsable(supplied[0])
            ? (supplied[0]!, caller.Scope)
            : ("gen-" + Guid.NewGuid().ToString("N"), caller.IssuedScope);
    }

    /// <summary>
    /// True when the call's own deadline is what cancelled it. A client library cancels the call itself at its deadline,
    /// which reaches the server a little before the server's copy of the deadline (sent as a relative grpc-timeout)
    /// passes: a cancellation within <see cref="DeadlineSlack"/> of the deadline counts as the deadline. The deadline
    /// is on gRPC's clock (the system's), not the injected one.
    /// </summary>
    private static bool DeadlinePassed(ServerCallContext context)
        => context.Status.StatusCode == StatusCode.DeadlineExceeded
            || (context.Deadline != DateTime.MaxValue && context.Deadline - DeadlineSlack <= DateTime.UtcNow);

    /// <summary>
    /// Whether <paramref name="token"/> is cancelled within <see cref="CancellationGrace"/>: a write that failed because the
    /// client reset the stream sees the call's token cancelled a moment later, from the thread pool.
    /// </summary>
    private async Task<bool> CancelledSoonAsync(CancellationToken token)
    {
        if (token.IsCancellationRequested)
        {
            return true;
        }

        try
        {
            await Task.Delay(CancellationGrace, time, token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        return token.IsCancellationRequested;
    }

    /// <summary>Waits, bounded, for the engine to end every choice, so that the log line carries the real token counts.</summary>
    private async Task WaitForFinalCountsAsync(GenerationStream stream)
    {
        try
        {
            await stream.Completion.WaitAsync(FinalCountsTimeout, time).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // The engine is stopping or stalled; log what has arrived.
        }
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
            KvElementType = spec.ElementType.ToName(),
            KvBytesPerToken = (ulong)spec.KvBytesPerToken,
        };
        foreach (var id in model.EosTokenIds)
        {
            info.EosTokenIds.Add((uint)id);
        }

        foreach (var device in model.Decoder.KvDevices)
        {
            info.KvDevices.Add(device.ToString());
        }

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
