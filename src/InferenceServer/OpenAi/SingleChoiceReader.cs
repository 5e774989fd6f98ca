// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics.CodeAnalysis;
using System.Threading.Channels;
using InferenceServer.Engine.Requests;

namespace InferenceServer.OpenAi;

/// <summary>Presents one choice's update channel as the indexed stream the SSE writer reads, without copying.</summary>
internal sealed class SingleChoiceReader(ChannelReader<GenerationUpdate> inner) : ChannelReader<(int Index, GenerationUpdate Update)>
{
    /// <inheritdoc />
    public override Task Completion => inner.Completion;

    /// <inheritdoc />
    public override bool TryRead([MaybeNullWhen(false)] out (int Index, GenerationUpdate Update) item)
    {
        if (inner.TryRead(out var update))
        {
            item = (0, update);
            return true;
        }

        item = default;
        return false;
    }

    /// <inheritdoc />
    public override ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default) => inner.WaitToReadAsync(cancellationToken);
}
