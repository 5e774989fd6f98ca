// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Hosting;

/// <summary>The server cannot start; the message is the one line printed before exiting with code 2.</summary>
internal sealed class StartupException : Exception
{
    /// <summary>Creates the exception.</summary>
    public StartupException(string message, Exception? inner = null)
        : base(message, inner)
    {
    }
}
