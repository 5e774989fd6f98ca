// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Grpc;

/// <summary>
/// Who made a gRPC call, as far as request ids go (an HTTP feature set by <see cref="GrpcAuthenticationMiddleware"/>).
/// Request ids live in scopes: a call sees, collides with and aborts only ids of its own scope.
/// With <c>--api-key</c> the scope is the key the call presented, for client-chosen and server-issued ids alike.
/// Without it, client-chosen ids are scoped to the HTTP/2 connection (a channel normally keeps one), and server-issued
/// ids (<c>gen-</c> and 128 random bits) to no one: knowing one is what allows aborting it from another connection.
/// </summary>
internal sealed class GrpcCaller(string scope, string issuedScope)
{
    /// <summary>The caller of an in-process call that did not pass the gRPC port's middleware: one shared scope.</summary>
    public static readonly GrpcCaller Anonymous = new(string.Empty, string.Empty);

    /// <summary>The scope of ids the caller chooses (<c>request_id</c> or <c>x-request-id</c>).</summary>
    public string Scope { get; } = scope;

    /// <summary>The scope of ids the server issues to this caller.</summary>
    public string IssuedScope { get; } = issuedScope;
}
