// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Engine.KvCache;

/// <summary>One KV pool as <see cref="KvPlacementPolicy"/> sees it.</summary>
/// <param name="Name">The pool's name (its device: <c>cuda:0</c>, <c>cpu</c>, <c>cpu:1</c>).</param>
/// <param name="Capacity">Blocks it holds.</param>
/// <param name="SecondsPerBlock">Measured attention time per block it holds, per step; 0 when not measured.</param>
internal readonly record struct KvPoolInput(string Name, int Capacity, double SecondsPerBlock);
