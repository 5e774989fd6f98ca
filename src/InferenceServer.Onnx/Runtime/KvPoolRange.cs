// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>One KV pool of a runner: the global block ids [<paramref name="FirstBlock"/>, + <paramref name="BlockCount"/>) on one device.</summary>
/// <param name="Name">The pool's label in <c>/metrics</c> and logs: its device, with an index when a device has several (<c>cpu:1</c>).</param>
/// <param name="FirstBlock">The global id of its first block.</param>
/// <param name="BlockCount">Its blocks.</param>
public readonly record struct KvPoolRange(string Name, int FirstBlock, int BlockCount);
