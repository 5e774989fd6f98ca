// Licensed under the MIT License. See LICENSE in the repository root.
using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Frozen;
using System.IO.Compression;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.AspNetCore.Server;
using Grpc.Core;
using Microsoft.AspNetCore.Http.Features;

namespace InferenceServer.Grpc;

/// <summary>
/// Reads and checks the one request message of a unary or server-streaming call before grpc-dotnet does, and answers
/// a bad one with a client-error status naming the problem; grpc-dotnet would end many of them with UNKNOWN
/// ("Exception was thrown by handler"), blaming the server for the client's bytes:
/// <list type="bullet">
/// <item>a message longer than <c>--grpc-max-message-size</c> (a length prefix of 0xFFFFFFFF included), or one that
/// inflates past it: RESOURCE_EXHAUSTED, before the body is read;</item>
/// <item>a truncated frame, a compressed-flag other than 0 or 1, a compressed frame without a usable
/// <c>grpc-encoding</c>, compressed bytes that do not inflate (<c>gzip</c> or <c>deflate</c>), a second message, or
/// bytes that are not a valid request message: INVALID_ARGUMENT;</item>
/// <item>an encoding other than <c>gzip</c>, <c>deflate</c> or <c>identity</c>: UNIMPLEMENTED.</item>
/// </list>
/// A good message is handed on uncompressed from memory. Client- and bidirectional-streaming methods (reflection)
/// pass through to grpc-dotnet, whose receive limit is the same <c>--grpc-max-message-size</c>.
/// </summary>
internal sealed class GrpcFrameMiddleware
{
    private const int HeaderLength = 5;

    private static readonly FrozenDictionary<string, MessageDescriptor> RequestTypes = FindRequestTypes();

    /// <summary>Longest <c>grpc-timeout</c> applied to receiving the message; a longer one (up to 8 digits of hours) is no bound here.</summary>
    private static readonly TimeSpan LongestReceiveTimeout = TimeSpan.FromDays(1);

    private readonly RequestDelegate _next;
    private readonly int _maxMessageSize;
    private readonly TimeProvider _time;

    /// <summary>Creates the middleware with the limit of <paramref name="options"/>.</summary>
    public GrpcFrameMiddleware(RequestDelegate next, GrpcServerOptions options, TimeProvider time)
    {
        _next = next;
        _maxMessageSize = options.MaxMessageSize;
        _time = time;
    }

    /// <summary>Checks the call's request message, then runs the call.</summary>
    public async Task InvokeAsync(HttpContext context)
    {
        var method = context.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>()?.Method;
        if (method is null || !RequestTypes.TryGetValue(method.FullName, out var type))
        {
            await _next(context).ConfigureAwait(false);
            return;
        }

        // The frame's own length is checked against --grpc-max-message-size below; Kestrel's HTTP body limit is not the gRPC one.
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodySize)
        {
            bodySize.MaxRequestBodySize = null;
        }

        var original = context.Request.Body;
        var frame = new Frame();
        // The call's grpc-timeout bounds receiving its message too: a client that announces a message and stalls
        // gets DEADLINE_EXCEEDED when its deadline passes, as a call whose handler is running would.
        using var deadline = ParseTimeout(context.Request.Headers["grpc-timeout"]) is { } timeout ? new CancellationTokenSource(timeout, _time) : null;
        using var receiving = deadline is null ? null : CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, deadline.Token);
        try
        {
            Status? error;
            try
            {
                error = await ReadAsync(context, original, type, frame, receiving?.Token ?? context.RequestAborted).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (deadline is { IsCancellationRequested: true } && !context.RequestAborted.IsCancellationRequested)
            {
                error = new Status(StatusCode.DeadlineExceeded, "The call's deadline (grpc-timeout) passed while its request message was still being received.");
            }

            if (error is { } status)
            {
                await GrpcStatusResponse.WriteAsync(context, status.StatusCode, status.Detail).ConfigureAwait(false);
                return;
            }

            context.Request.Body = new MemoryStream(frame.Buffer!, 0, HeaderLength + frame.Length, writable: false);
            await _next(context).ConfigureAwait(false);
        }
        finally
        {
            context.Request.Body = original;
            frame.Return();
        }
    }

    private async Task<Status?> ReadAsync(HttpContext context, Stream body, MessageDescriptor type, Frame frame, CancellationToken cancellationToken)
    {
        var header = new byte[HeaderLength];
        var read = await body.ReadAtLeastAsync(header, HeaderLength, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
        if (read < HeaderLength)
        {
            return Invalid(read == 0 ? "the call carries no request message." : "the message frame is truncated (fewer than 5 header bytes).");
        }

        var flag = header[0];
        var length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(1));
        if (flag > 1)
        {
            return Invalid($"the frame's compressed-flag is {flag}; it must be 0 or 1.");
        }

        if (length > (uint)_maxMessageSize)
        {
            return TooLarge($"the request message is {length} bytes");
        }

        string? encoding = null;
        if (flag == 1)
        {
            encoding = context.Request.Headers["grpc-encoding"].ToString();
            if (encoding is not ("gzip" or "deflate"))
            {
                if (encoding.Length == 0 || encoding == "identity")
                {
                    return Invalid("the frame is marked compressed but the call's grpc-encoding names no compression.");
                }

                context.Response.Headers["grpc-accept-encoding"] = "identity,gzip,deflate";
                return new Status(StatusCode.Unimplemented, $"The message encoding '{encoding}' is not supported; use gzip, deflate or identity.");
            }
        }

        // The message lands after room for a header, so that the frame handed on needs no copy; one byte more shows a second message.
        var buffer = ArrayPool<byte>.Shared.Rent(HeaderLength + (int)length + 1);
        var message = buffer.AsMemory(HeaderLength, (int)length + 1);
        read = await body.ReadAtLeastAsync(message, message.Length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
        frame.Adopt(buffer, (int)length);
        if (read < length)
        {
            return Invalid($"the frame announces {length} bytes but carries {read}.");
        }

        if (read > length || await body.ReadAsync(message[..1], cancellationToken).ConfigureAwait(false) > 0)
        {
            return Invalid("the call carries more than one request message; this method takes exactly one.");
        }

        if (encoding is not null && Inflate(encoding, frame) is { } problem)
        {
            return problem;
        }

        try
        {
            _ = type.Parser.ParseFrom(frame.Message);
        }
        catch (Exception ex) when (ex is InvalidProtocolBufferException or System.Text.DecoderFallbackException)
        {
            return Invalid($"the message is not a valid {type.FullName}: {ex.Message}");
        }

        frame.WriteHeader();
        return null;
    }

    /// <summary>Replaces the compressed message of <paramref name="frame"/> by its inflated bytes, at most the message size limit.</summary>
    private Status? Inflate(string encoding, Frame frame)
    {
        var compressed = new MemoryStream(frame.Buffer!, HeaderLength, frame.Length, writable: false);
        using Stream inflater = encoding == "gzip" ? new GZipStream(compressed, CompressionMode.Decompress) : new ZLibStream(compressed, CompressionMode.Decompress);
        var inflated = new Frame();
        try
        {
            inflated.Adopt(ArrayPool<byte>.Shared.Rent(HeaderLength + Math.Min(_maxMessageSize, Math.Max(4 * frame.Length, 4096)) + 1), 0);
            while (true)
            {
                var buffer = inflated.Buffer!;
                if (inflated.Length > _maxMessageSize)
                {
                    return TooLarge($"the request message inflates to more than {_maxMessageSize} bytes");
                }

                if (HeaderLength + inflated.Length == buffer.Length)
                {
                    var larger = ArrayPool<byte>.Shared.Rent(Math.Min(2 * buffer.Length, HeaderLength + _maxMessageSize + 1));
                    buffer.AsSpan(0, HeaderLength + inflated.Length).CopyTo(larger);
                    inflated.Adopt(larger, inflated.Length);
                    continue;
                }

                var read = inflater.Read(buffer, HeaderLength + inflated.Length, buffer.Length - HeaderLength - inflated.Length);
                if (read == 0)
                {
                    break;
                }

                inflated.Adopt(buffer, inflated.Length + read);
            }
        }
        catch (InvalidDataException ex)
        {
            return Invalid($"the message is marked {encoding}-compressed but does not inflate: {ex.Message}");
        }
        finally
        {
            // Whichever of the two buffers is not kept goes back to the pool.
            frame.Swap(inflated);
            inflated.Return();
        }

        return null;
    }

    /// <summary>
    /// The <c>grpc-timeout</c> header (1 to 8 digits and a unit: H, M, S, m, u, n) as a span; null when absent,
    /// malformed (grpc-dotnet then answers for itself) or longer than <see cref="LongestReceiveTimeout"/>.
    /// </summary>
    internal static TimeSpan? ParseTimeout(string? header)
    {
        if (header is not { Length: >= 2 and <= 9 } || !long.TryParse(header.AsSpan(0, header.Length - 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var value))
        {
            return null;
        }

        TimeSpan? timeout = header[^1] switch
        {
            'H' => TimeSpan.FromHours(Math.Min(value, 48)),
            'M' => TimeSpan.FromMinutes(Math.Min(value, 48 * 60)),
            'S' => TimeSpan.FromSeconds(Math.Min(value, 48 * 3600)),
            'm' => TimeSpan.FromMilliseconds(value),
            'u' => TimeSpan.FromTicks(value * 10),
            'n' => TimeSpan.FromTicks(value / 100),
            _ => null,
        };
        return timeout <= LongestReceiveTimeout ? timeout : null;
    }

    private static Status Invalid(string problem) => new(StatusCode.InvalidArgument, "The request is not a valid gRPC request: " + problem);

    private Status TooLarge(string what) => new(StatusCode.ResourceExhausted, $"{what}; this server accepts request messages of at most {_maxMessageSize} bytes (--grpc-max-message-size).");

    private static FrozenDictionary<string, MessageDescriptor> FindRequestTypes()
    {
        var types = new Dictionary<string, MessageDescriptor>(StringComparer.Ordinal);
        foreach (var file in (FileDescriptor[])[V1.InferenceReflection.Descriptor, global::Grpc.Health.V1.HealthReflection.Descriptor])
        {
            foreach (var service in file.Services)
            {
                foreach (var method in service.Methods)
                {
                    if (!method.IsClientStreaming)
                    {
                        types.Add($"/{service.FullName}/{method.Name}", method.InputType);
                    }
                }
            }
        }

        return types.ToFrozenDictionary(StringComparer.Ordinal);
    }

    /// <summary>A request frame in a pooled buffer: <see cref="HeaderLength"/> header bytes, then the message.</summary>
    private sealed class Frame
    {
        /// <summary>The pooled buffer, or null.</summary>
        public byte[]? Buffer { get; private set; }

        /// <summary>The message's length.</summary>
        public int Length { get; private set; }

        /// <summary>The message's bytes.</summary>
        public ReadOnlySpan<byte> Message => Buffer.AsSpan(HeaderLength, Length);

        /// <summary>Takes <paramref name="buffer"/>, returning the one held before (when another) to the pool.</summary>
        public void Adopt(byte[] buffer, int length)
        {
            if (Buffer is { } held && !ReferenceEquals(held, buffer))
            {
                ArrayPool<byte>.Shared.Return(held);
            }

            Buffer = buffer;
            Length = length;
        }

        /// <summary>Exchanges buffers with <paramref name="other"/>.</summary>
        public void Swap(Frame other)
        {
            (Buffer, other.Buffer) = (other.Buffer, Buffer);
            (Length, other.Length) = (other.Length, Length);
        }

        /// <summary>Writes an uncompressed frame header for the message.</summary>
        public void WriteHeader()
        {
            Buffer![0] = 0;
            BinaryPrimitives.WriteUInt32BigEndian(Buffer.AsSpan(1, 4), (uint)Length);
        }

        /// <summary>Returns the buffer to the pool.</summary>
        public void Return()
        {
            if (Buffer is { } held)
            {
                ArrayPool<byte>.Shared.Return(held);
                Buffer = null;
            }
        }
    }
}
