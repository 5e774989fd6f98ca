// Licensed under the MIT License. See LICENSE in the repository root.
using System.Runtime.InteropServices;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// The process environment that native code reads (ONNX Runtime's kernels call <c>getenv</c>). On Unix .NET keeps its own
/// copy of the environment, so <see cref="Environment.SetEnvironmentVariable(string, string)"/> is not seen there:
/// this sets the C library's.
/// </summary>
internal static partial class NativeEnvironment
{
    /// <summary>
    /// ONNX Runtime's switch for its CUDA MoE kernels' GEMM tactic: set to 1, every call takes the first tactic instead of
    /// profiling them all for each new power-of-two token count (per layer, seconds for a model of many MoE layers, and a
    /// tactic that differs with the batch's size).
    /// </summary>
    public const string FixedMoeTactic = "ORT_FORCE_DETERMINISTIC_MOE";

    /// <summary>Sets <paramref name="name"/> to <paramref name="value"/> for native code as well as .NET.</summary>
    public static void Set(string name, string value)
    {
        Environment.SetEnvironmentVariable(name, value);
        if (!OperatingSystem.IsWindows() && SetEnv(name, value, 1) != 0)
        {
            throw new InvalidOperationException($"setenv({name}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    /// <summary>What native code reads for <paramref name="name"/> (null when unset).</summary>
    public static string? Get(string name) =>
        OperatingSystem.IsWindows() ? Environment.GetEnvironmentVariable(name) : Marshal.PtrToStringUTF8(GetEnv(name));

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int SetEnv(string name, string value, int overwrite);

    [LibraryImport("libc", EntryPoint = "getenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr GetEnv(string name);
}
