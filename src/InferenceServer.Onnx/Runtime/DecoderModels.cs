// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Packaging;
using Microsoft.ML.OnnxRuntime;

namespace InferenceServer.Onnx.Runtime;

/// <summary>Opens a model folder's graph as whichever decoder its I/O says it is.</summary>
public static class DecoderModels
{
    /// <summary>
    /// Opens <paramref name="package"/>'s graph on the device <paramref name="options"/> names: a paged graph (it takes a
    /// <c>block_table</c>) becomes a <see cref="PagedDecoderModel"/>, anything else an Optimum-style <see cref="OnnxDecoderModel"/>;
    /// with <see cref="OnnxSessionOptions.AttentionDevices"/>, the split form (<see cref="SplitDecoderModel"/>).
    /// </summary>
    /// <exception cref="ModelPackageException">The graph cannot be loaded, lacks what its kind needs, or needs another device.</exception>
    /// <exception cref="ExecutionProviderException">The device is malformed or cannot be used.</exception>
    public static IDecoderModel Open(ModelPackage package, OnnxSessionOptions? options = null)
    {
        options ??= new OnnxSessionOptions();
        if (options.AttentionDevices.Count > 0)
        {
            // Attention offloading (ADR 0005): the model's split form, its KV cache on the attention devices.
            return SplitDecoderModel.Open(package, options);
        }

        // CUDA graph capture is a session option, so the graph's kind must be known before its one session is made: the
        // builder records it in genai_config.json. A paged graph without that record runs its steps uncaptured.
        var capture = options.CudaGraphs && package.GraphKind == PagedDecoderModel.GraphKind;
        if (options.Deterministic)
        {
            // Batch invariance: ONNX Runtime's CUDA MoE kernel otherwise picks its GEMM tactic per token-count bucket, so a
            // row's expert GEMMs would depend on how many tokens share its step.
            NativeEnvironment.Set(NativeEnvironment.FixedMoeTactic, "1");
        }

        var factory = new OnnxSessionFactory(options);
        (InferenceSession Session, ComputeDevice Device, string? DeviceNote, string? GraphNote) created;
        try
        {
            created = factory.OpenModel(package, capture);
        }
        catch (ModelPackageException ex) when (capture && OnnxSessionFactory.IsCaptureRefusal(ex))
        {
            // ONNX Runtime refuses capture when partitioning inserted a host/device copy, as in a paged MLA graph built
            // without attention_metadata (ADR 0008): such a graph runs every step uncaptured.
            capture = false;
            created = factory.OpenModel(package, capture);
        }

        var (session, device, deviceNote, graphNote) = created;
        if (PagedDecoderModel.IsPaged(session))
        {
            var paged = PagedDecoderModel.FromSession(session, package, device, deviceNote, capture);
            paged.CudaGraphMaxBatch = options.CudaGraphMaxBatch;
            paged.Deterministic = options.Deterministic;
            return paged;
        }

        if (capture)
        {
            session.Dispose();
            throw new ModelPackageException(package.GraphPath, $"genai_config.json says the graph is {PagedDecoderModel.GraphKind}, but it takes no block_table");
        }

        return OnnxDecoderModel.FromSession(session, package, device, deviceNote, graphNote);
    }
}
