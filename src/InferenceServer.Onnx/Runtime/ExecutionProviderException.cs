// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>The requested device (<c>--device</c>) is malformed or its execution provider cannot be used.</summary>
public sealed class ExecutionProviderException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ExecutionProviderException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its cause.</summary>
    public ExecutionProviderException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
