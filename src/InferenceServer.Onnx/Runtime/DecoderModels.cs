// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Packaging;

namespace InferenceServer.Onnx.Runtime;

/// <summary>Opens a model folder's graph as whichever decoder its I/O says it is.</summary>
public static class DecoderModels
{
    /// <summary>
    /// Opens <paramref name="package"/>'s graph on the device <paramref name="options"/> names: a paged graph (it takes a
    /// <c>block_table</c>) becomes a <see cref="PagedDecoderModel"/>, anything else an Optimum-style <see cref="OnnxDecoderModel"/>.
    /// </summary>
    /// <exception cref="ModelPackageException">The graph cannot be loaded, lacks what its kind needs, or needs another device.</exception>
    /// <exception cref="ExecutionProviderException">The device is malformed or cannot be used.</exception>
    public static IDecoderModel Open(ModelPackage package, OnnxSessionOptions? options = null)
    {
        options ??= new OnnxSessionOptions();
        var (session, device, deviceNote) = OnnxDecoderModel.CreateSession(package, options);
        if (!PagedDecoderModel.IsPaged(session))
        {
            return OnnxDecoderModel.FromSession(session, package, device, deviceNote);
        }

        if (options.CudaGraphs && device.StartsWith("cuda", StringComparison.Ordinal))
        {
            // The graph kind is known once a session has read it: the session is made again with capture enabled.
            session.Dispose();
            (session, device, deviceNote) = OnnxDecoderModel.CreateSession(package, options, cudaGraphs: true);
            return PagedDecoderModel.FromSession(session, package, device, deviceNote, cudaGraphs: true);
        }

        return PagedDecoderModel.FromSession(session, package, device, deviceNote);
    }
}
