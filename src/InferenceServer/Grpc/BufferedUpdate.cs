// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Engine.Requests;

namespace InferenceServer.Grpc;

/// <summary>One engine update waiting for the client, with its choice and the time the engine released it.</summary>
/// <param name="Index">The choice.</param>
/// <param name="Update">The engine's update.</param>
/// <param name="Timestamp">When it left the engine (<see cref="TimeProvider.GetTimestamp"/>).</param>
internal readonly record struct BufferedUpdate(int Index, GenerationUpdate Update, long Timestamp);
