namespace InferenceServer.FunctionalTests.Infrastructure;

/// <summary>
/// The default model with a chat template (both HTTP endpoints live) and gRPC, for the property-based bad-input tests;
/// a server maximum deadline of 60 s, so a request that hung would fail the property rather than the run.
/// </summary>
public sealed class FuzzServer() : ModelServerFixture(RepositoryPaths.DefaultModel, "--chat-template", RepositoryPaths.ChatTemplate("qwen2.5-instruct"), "--max-request-timeout", "60");
