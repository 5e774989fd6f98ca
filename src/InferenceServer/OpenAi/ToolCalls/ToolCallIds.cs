// Licensed under the MIT License. See LICENSE in the repository root.
using System.Security.Cryptography;

namespace InferenceServer.OpenAi.ToolCalls;

/// <summary>Random tool-call ids in the form each family's clients and templates accept.</summary>
internal static class ToolCallIds
{
    private const string Alphanumerics = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

    /// <summary>
    /// A new id: 9 alphanumerics for <see cref="ToolCallFormat.Mistral"/> (its template and mistral-common reject any
    /// other id when the call comes back in the history), otherwise OpenAI's <c>call_</c> and 24 alphanumerics.
    /// </summary>
    public static string New(ToolCallFormat format) => format == ToolCallFormat.Mistral
        ? RandomNumberGenerator.GetString(Alphanumerics, 9)
        : "call_" + RandomNumberGenerator.GetString(Alphanumerics, 24);
}
