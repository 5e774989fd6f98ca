// Licensed under the MIT License. See LICENSE in the repository root.
using Microsoft.ML.OnnxRuntime;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// A session's <see cref="OrtIoBinding"/> that remembers what each name is bound to and renews a binding only when the
/// value changes: a steady decode step (the same cached views) rebinds nothing, and so allocates nothing. Only for values
/// ONNX Runtime reads in place (device memory, or host memory of an input a kernel reads on the host, or of an output it
/// copies into): binding a host value that a device kernel consumes copies it at bind time, and a later change of its
/// contents would not be seen.
/// </summary>
internal sealed class StepBinding : IDisposable
{
    private readonly InferenceSession _session;
    private readonly OrtIoBinding _binding;
    private readonly Dictionary<string, OrtValue> _bound = new(StringComparer.Ordinal);
    private readonly bool _synchronize;

    /// <summary>
    /// Creates the binding of <paramref name="session"/>; with <paramref name="synchronize"/> false, <see cref="Run"/>
    /// only queues the work (the session runs on a stream the caller synchronizes: a split step on one stream).
    /// </summary>
    public StepBinding(InferenceSession session, bool synchronize = true)
    {
        _session = session;
        _binding = session.CreateIoBinding();
        _synchronize = synchronize;
    }

    /// <summary>Binds <paramref name="value"/> as input <paramref name="name"/> unless it is bound already.</summary>
    public void Input(string name, OrtValue value)
    {
        if (!_bound.TryGetValue(name, out var current) || !ReferenceEquals(current, value))
        {
            _binding.BindInput(name, value);
            _bound[name] = value;
        }
    }

    /// <summary>
    /// Binds <paramref name="value"/> as input <paramref name="name"/> even if it is bound already: for host memory that a
    /// device kernel consumes, whose contents changed since the last bind (ONNX Runtime copies it at bind time).
    /// </summary>
    public void InputAgain(string name, OrtValue value)
    {
        _binding.BindInput(name, value);
        _bound[name] = value;
    }

    /// <summary>Binds <paramref name="value"/> as output <paramref name="name"/> unless it is bound already.</summary>
    public void Output(string name, OrtValue value)
    {
        if (!_bound.TryGetValue(name, out var current) || !ReferenceEquals(current, value))
        {
            _binding.BindOutput(name, value);
            _bound[name] = value;
        }
    }

    /// <summary>Lets ONNX Runtime allocate output <paramref name="name"/> on <paramref name="memory"/> at the next run.</summary>
    public void OutputTo(string name, OrtMemoryInfo memory)
    {
        _binding.BindOutputToDevice(name, memory);
        _bound.Remove(name);
    }

    /// <summary>Runs the session over the bindings and (unless made not to synchronize) waits for the outputs.</summary>
    public void Run(RunOptions options)
    {
        _session.RunWithBinding(options, _binding);
        if (_synchronize)
        {
            _binding.SynchronizeBoundOutputs();
        }
    }

    /// <inheritdoc />
    public void Dispose() => _binding.Dispose();
}
