// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using System.Threading.Channels;
using InferenceServer.Engine.KvCache;
using InferenceServer.Engine.Requests;
using InferenceServer.Engine.Sampling;
using InferenceServer.Engine.Text;
using InferenceServer.Tokenization;

namespace InferenceServer.Engine.Scheduling;

/// <summary>
/// The scheduler's state for one request: its tokens (prompt, then generated), how many of them are in the KV cache,
/// its block table, its sampler state and its output channel. Only the scheduler loop touches it.
/// </summary>
internal sealed class Sequence
{
    /// <summary>Creates the state for <paramref name="request"/>.</summary>
    public Sequence(GenerationRequest request, SequenceId id, ChannelWriter<GenerationUpdate> output, StreamingDetokenizer? detokenizer, IReadOnlyList<int> eosTokenIds, CancellationToken cancellation)
    {
        Request = request;
        Id = id;
        Output = output;
        Detokenizer = detokenizer;
        Cancellation = cancellation;
        Tokens = new List<int>(request.PromptTokens.Count + request.Stop.MaxTokens);
        Tokens.AddRange(request.PromptTokens);
        PromptLength = request.PromptTokens.Count;
        Stops = new StopStringMatcher(request.Stop.StopStrings);
        Random = new SeededRandom(request.Sampling.Seed ?? System.Random.Shared.NextInt64());
        EosTokenIds = eosTokenIds;

        var banned = new List<int>();
        if (request.Stop.MinTokens > 0)
        {
            if (!request.Stop.IgnoreEos)
            {
                banned.AddRange(eosTokenIds);
            }

            banned.AddRange(request.Stop.StopTokenIds);
        }

        BannedBeforeMinTokens = [.. banned];

        // The bias as two arrays, so that applying it each step neither enumerates a dictionary nor allocates.
        if (request.Sampling.LogitBias is { Count: > 0 } bias)
        {
            BiasIds = new int[bias.Count];
            BiasValues = new float[bias.Count];
            var i = 0;
            foreach (var (token, value) in bias)
            {
                BiasIds[i] = token;
                BiasValues[i] = value;
                i++;
            }
        }

        Constraint = request.Constraint;
        PromptLogprobsPending = request.Sampling.PromptLogprobs is not null;
    }

    /// <summary>The request as submitted.</summary>
    public GenerationRequest Request { get; }

    /// <summary>Its id: submission order, for first-come-first-served ties, and its name to the runner.</summary>
    public SequenceId Id { get; }

    /// <summary>Where updates go.</summary>
    public ChannelWriter<GenerationUpdate> Output { get; }

    /// <summary>Turns token ids into text without splitting characters; null in token-only mode.</summary>
    public StreamingDetokenizer? Detokenizer { get; }

    /// <summary>Signalled when the caller gives up.</summary>
    public CancellationToken Cancellation { get; }

    /// <summary>Prompt then generated tokens.</summary>
    public List<int> Tokens { get; }

    /// <summary>Tokens of the prompt.</summary>
    public int PromptLength { get; }

    /// <summary>
    /// True from acceptance until first admitted to the batch (or finished): the sequence counts against the queue's
    /// request and token bounds meanwhile. A preempted sequence does not count again.
    /// </summary>
    public bool Queued { get; set; }

    /// <summary>Tokens whose KV is in the cache.</summary>
    public int Computed { get; set; }

    /// <summary>Prompt tokens found in the prefix cache at first admission.</summary>
    public int CachedPromptTokens { get; set; } = -1;

    /// <summary>KV blocks, in token order.</summary>
    public List<BlockId> Blocks { get; } = [];

    /// <summary>Hashes of the full blocks registered in the prefix cache.</summary>
    public List<ulong> BlockHashes { get; } = [];

    /// <summary>Host-tier slots holding copies of this sequence's first blocks, in order, while it is preempted (ADR 0009).</summary>
    public List<int> HostSlots { get; } = [];

    /// <summary>Tokens whose KV it had when last preempted, until it resumes: what resuming recomputes is counted from it.</summary>
    public int PreemptedComputed { get; set; }

    /// <summary>
    /// The host tier's copy-in fence of blocks it holds whose bytes may still be arriving (ADR 0009; 0: none): it stays out
    /// of the steps until the fence has passed.
    /// </summary>
    public long LoadFence { get; set; }

    /// <summary>When it was admitted with <see cref="LoadFence"/> pending (a timestamp; 0: not loading).</summary>
    public long LoadingSince { get; set; }

    /// <summary>Tokens generated so far.</summary>
    public int Generated => Tokens.Count - PromptLength;

    /// <summary>Stop-string state.</summary>
    public StopStringMatcher Stops { get; }

    /// <summary>The request's random generator.</summary>
    public SeededRandom Random;

    /// <summary>Ids that end the sequence unless <c>ignore_eos</c>.</summary>
    public IReadOnlyList<int> EosTokenIds { get; }

    /// <summary>Ids masked out until <c>min_tokens</c> are generated.</summary>
    public int[] BannedBeforeMinTokens { get; }

    /// <summary>Tokens still to run through the model.</summary>
    public int Remaining => Tokens.Count - Computed;

    /// <summary>Token ids of the logit bias (parallel to <see cref="BiasValues"/>), or null when there is none.</summary>
    public int[]? BiasIds { get; }

    /// <summary>The bias of each id in <see cref="BiasIds"/>.</summary>
    public float[]? BiasValues { get; }

    /// <summary>The request's structured-output constraint, or null.</summary>
    public ITokenConstraint? Constraint { get; }

    /// <summary>Token counts for the penalties, created at the first sampling step of a request with a penalty on.</summary>
    public PenaltyCounts? Penalties { get; set; }

    /// <summary>
    /// True while the request wants prompt logprobs that are not complete yet: its rows return logits for every position
    /// and its prompt is not taken from the prefix cache.
    /// </summary>
    public bool PromptLogprobsPending { get; set; }

    /// <summary>The prompt logprobs (entry 0 null), filled chunk by chunk; null until the first chunk runs.</summary>
    public TokenLogprobs?[]? PromptLogprobs { get; set; }

    /// <summary>Hands over <see cref="PromptLogprobs"/> once complete, for the first update; null afterwards.</summary>
    public TokenLogprobs?[]? TakePromptLogprobs()
    {
        if (PromptLogprobsPending)
        {
            return null;
        }

        var result = PromptLogprobs;
        PromptLogprobs = null;
        return result;
    }

    /// <summary>The caller's span when it submitted (the parent of the engine's spans); default when there was none.</summary>
    public ActivityContext ParentContext { get; init; }

    /// <summary>When the caller submitted it (<see cref="TimeProvider.GetTimestamp"/>).</summary>
    public long SubmittedAt { get; init; }

    /// <summary>When it was first scheduled (end of queue wait, start of prefill); 0 until then.</summary>
    public long ScheduledAt { get; set; }

    /// <summary>When its first token was sampled; 0 until then.</summary>
    public long FirstTokenAt { get; set; }

    /// <summary>When its latest token was sampled; 0 until the first.</summary>
    public long LastTokenAt { get; set; }
}
