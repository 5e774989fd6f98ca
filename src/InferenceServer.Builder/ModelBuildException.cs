// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Builder;

/// <summary>A checkpoint cannot be built: a missing or malformed file, an unsupported architecture or setting.</summary>
public sealed class ModelBuildException : Exception
{
    /// <summary>Creates the exception with a message that names the file or setting at fault.</summary>
    public ModelBuildException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the error that caused it.</summary>
    public ModelBuildException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
