using Grpc.Core;
using InferenceServer.Grpc.V1;

namespace InferenceServer.FunctionalTests.Grpc;

/// <summary>A Generate stream read to its end: the messages, and per choice the concatenated text and token ids.</summary>
public sealed class GenerateResult
{
    public List<GenerateResponse> Messages { get; } = [];

    public Dictionary<uint, string> Text { get; } = [];

    public Dictionary<uint, List<uint>> TokenIds { get; } = [];

    public Dictionary<uint, GenerateComplete> Completes { get; } = [];

    public string? HeaderRequestId { get; set; }

    public static async Task<GenerateResult> ReadAsync(Inference.InferenceClient client, GenerateRequest request, CallOptions options = default)
    {
        var result = new GenerateResult();
        using var call = client.Generate(request, options.Deadline is null ? options.WithDeadline(DateTime.UtcNow.AddSeconds(60)) : options);
        var headers = await call.ResponseHeadersAsync;
        result.HeaderRequestId = headers.GetValue("x-request-id");
        await foreach (var message in call.ResponseStream.ReadAllAsync())
        {
            result.Add(message);
        }

        return result;
    }

    public void Add(GenerateResponse message)
    {
        Messages.Add(message);
        if (message.Chunk is { } chunk)
        {
            Text[chunk.Index] = Text.GetValueOrDefault(chunk.Index, "") + chunk.Text;
            if (!TokenIds.TryGetValue(chunk.Index, out var ids))
            {
                TokenIds[chunk.Index] = ids = [];
            }

            ids.AddRange(chunk.TokenIds);
        }
        else if (message.Complete is { } complete)
        {
            Completes.Add(complete.Index, complete);
        }
    }
}
