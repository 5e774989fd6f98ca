// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using System.Runtime.InteropServices;
using InferenceServer.Onnx.Runtime;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.Onnx.Attention;

/// <summary>
/// What both GPU attention backends (<see cref="CudaAttentionBackend"/>, <see cref="LseAttentionBackend"/>) hold per
/// attention layer: one session per distinct layer shape of their attention graph, one <see cref="StepBinding"/> per
/// layer, and the layer's zeroed key and value pools ([blocks, block_size, kv_heads, width] in the model's dtype; no
/// value pool for a latent layer, whose value is its key's prefix) bound once as both the graph's pool input and its
/// aliased output. On CUDA device N, or in host memory with device -1 (ONNX Runtime's CPU provider: the tests).
/// </summary>
internal sealed class LayerPoolSessions : IDisposable
{
    private readonly int _deviceId;
    private readonly IntPtr _stream;
    private readonly List<InferenceSession> _sessions = [];
    private readonly StepBinding[] _bindings;
    private readonly IntPtr[] _pools;
    private readonly OrtValue[] _poolValues;

    /// <summary>
    /// Creates the sessions of <paramref name="graph"/> (the serialized model of a layer's shape) and the pools of
    /// <paramref name="blockCount"/> blocks, bound under <paramref name="keyCache"/>/<paramref name="valueCache"/> (input,
    /// output) names.
    /// </summary>
    /// <exception cref="InvalidOperationException">The device has no memory left for the pools (CUDA's error).</exception>
    /// <exception cref="ExecutionProviderException">The graph does not load on the device.</exception>
    public LayerPoolSessions(
        IReadOnlyList<AttentionLayerSpec> layers, int deviceId, OrtMemoryInfo memory, TensorElementType type, int blockCount, int blockSize,
        Func<AttentionLayerSpec, byte[]> graph, (string Input, string Output) keyCache, (string Input, string Output) valueCache, IntPtr stream = default)
    {
        _deviceId = deviceId;
        _stream = stream;
        _bindings = new StepBinding[layers.Count];
        _pools = new IntPtr[layers.Count * 2];
        _poolValues = new OrtValue[layers.Count * 2];
        var elementBytes = type == TensorElementType.Float ? sizeof(float) : sizeof(ushort);
        try
        {
            var byShape = new Dictionary<(int, int, int, int, float, bool, bool), InferenceSession>();
            for (var i = 0; i < layers.Count; i++)
            {
                var spec = layers[i];
                var key = (spec.QueryHeads, spec.KvHeads, spec.KeyWidth, spec.ValueWidth, spec.Scale, spec.HeadMasked, spec.ValueIsKeyPrefix);
                if (!byShape.TryGetValue(key, out var session))
                {
                    session = CreateSession(spec, graph);
                    _sessions.Add(session);
                    byShape.Add(key, session);
                }

                _bindings[i] = new StepBinding(session, synchronize: stream == IntPtr.Zero);
                BindPool(memory, type, blockCount, blockSize, elementBytes, i, 2 * i, keyCache, spec.KvHeads, spec.KeyWidth);
                if (!spec.ValueIsKeyPrefix)
                {
                    BindPool(memory, type, blockCount, blockSize, elementBytes, i, (2 * i) + 1, valueCache, spec.KvHeads, spec.ValueWidth);
                }
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Bytes the pools take.</summary>
    public long KvBytes { get; private set; }

    /// <summary>Layer <paramref name="layer"/>'s binding (its pools already bound).</summary>
    public StepBinding this[int layer] => _bindings[layer];

    /// <summary>Layer <paramref name="layer"/>'s key (or value) pool memory (host-memory instances: the tests read it).</summary>
    public IntPtr Pool(int layer, bool value) => _pools[(2 * layer) + (value ? 1 : 0)];

    /// <summary>Frees the bindings, the pools and the sessions.</summary>
    public void Dispose()
    {
        foreach (var binding in _bindings)
        {
            binding?.Dispose();
        }

        foreach (var value in _poolValues)
        {
            value?.Dispose();
        }

        for (var i = 0; i < _pools.Length; i++)
        {
            Free(_pools[i]);
            _pools[i] = IntPtr.Zero;
        }

        foreach (var session in _sessions)
        {
            session.Dispose();
        }
    }

    private InferenceSession CreateSession(AttentionLayerSpec spec, Func<AttentionLayerSpec, byte[]> graph) =>
        CreateSession(graph(spec), spec.Layer, _deviceId, _stream, "--attention-device");

    /// <summary>
    /// A session of an attention graph (<paramref name="model"/>, for layer <paramref name="layer"/>) on CUDA device
    /// <paramref name="deviceId"/> (on <paramref name="stream"/> when not zero), or on the CPU provider with -1; a graph
    /// that does not load is reported under <paramref name="option"/>, the flag that asked for it.
    /// </summary>
    /// <exception cref="ExecutionProviderException">The graph does not load on the device.</exception>
    internal static InferenceSession CreateSession(byte[] model, int layer, int deviceId, IntPtr stream, string option)
    {
        using var sessionOptions = new SessionOptions { IntraOpNumThreads = 1, LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING };
        if (deviceId >= 0)
        {
            _ = OnnxSessionFactory.AppendProvider(sessionOptions, new DeviceRequest(Auto: false, ComputeDevice.Cuda(deviceId)), stream: stream);
        }

        try
        {
            return new InferenceSession(model, sessionOptions);
        }
        catch (OnnxRuntimeException ex)
        {
            var device = deviceId < 0 ? "cpu" : "cuda:" + deviceId.ToString(CultureInfo.InvariantCulture);
            throw new ExecutionProviderException($"{option} {device}: the attention graph of layer {layer} does not load ({ex.Message})", ex);
        }
    }

    private unsafe void BindPool(OrtMemoryInfo memory, TensorElementType type, int blockCount, int blockSize, int elementBytes, int layer, int slot, (string Input, string Output) names, int heads, int width)
    {
        long[] shape = [blockCount, blockSize, heads, width];
        var bytes = (long)blockCount * blockSize * heads * width * elementBytes;
        if (_deviceId < 0)
        {
            _pools[slot] = (IntPtr)NativeMemory.AlignedAlloc((nuint)bytes, 64);
            NativeMemory.Clear((void*)_pools[slot], (nuint)bytes);
        }
        else
        {
            _pools[slot] = CudaRuntime.AllocateZeroed(_deviceId, bytes);
        }

        KvBytes += bytes;
        _poolValues[slot] = OrtValue.CreateTensorValueWithData(memory, type, shape, _pools[slot], bytes);
        _bindings[layer].Input(names.Input, _poolValues[slot]);
        _bindings[layer].Output(names.Output, _poolValues[slot]);
    }

    private unsafe void Free(IntPtr pool)
    {
        if (pool == IntPtr.Zero)
        {
            return;
        }

        if (_deviceId < 0)
        {
            NativeMemory.AlignedFree((void*)pool);
        }
        else
        {
            CudaRuntime.Free(pool);
        }
    }
}
