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
        var (session, device, deviceNote) = OnnxDecoderModel.CreateSession(package, options ?? new OnnxSessionOptions());
        return PagedDecoderModel.IsPaged(session)
            ? PagedDecoderModel.FromSession(session, package, device, deviceNote)
            : OnnxDecoderModel.FromSession(session, package, device, deviceNote);
    }
}
