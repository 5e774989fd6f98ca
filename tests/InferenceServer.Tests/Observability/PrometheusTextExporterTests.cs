using InferenceServer.Engine.Diagnostics;
using InferenceServer.Observability;

namespace InferenceServer.Tests.Observability;

public sealed class PrometheusTextExporterTests
{
    [Theory]
    [InlineData(InferenceMetrics.MeterName, "vllm.num_requests_running", "{request}", "vllm:num_requests_running")]
    [InlineData(InferenceMetrics.MeterName, "vllm.time_to_first_token_seconds", "s", "vllm:time_to_first_token_seconds")]
    [InlineData(InferenceMetrics.MeterName, "vllm.kv_cache_usage_perc", null, "vllm:kv_cache_usage_perc")]
    [InlineData("Microsoft.AspNetCore.Hosting", "http.server.request.duration", "s", "http_server_request_duration_seconds")]
    [InlineData("System.Runtime", "dotnet.gc.heap.total_allocated", "By", "dotnet_gc_heap_total_allocated_bytes")]
    [InlineData("System.Runtime", "dotnet.gc.collections", "{collection}", "dotnet_gc_collections")]
    [InlineData("Other", "vllm.lookalike", "1", "vllm_lookalike_ratio")]
    [InlineData("Other", "already_seconds", "s", "already_seconds")]
    public void FamilyName_FollowsVllmAndPrometheusConventions(string meter, string name, string? unit, string expected)
        => Assert.Equal(expected, PrometheusTextExporter.FamilyName(meter, name, unit));

    [Theory]
    [InlineData("a.b-c/d", "a_b_c_d")]
    [InlineData("9lives", "_9lives")]
    [InlineData("ok_name", "ok_name")]
    public void Sanitize_KeepsPrometheusAlphabet(string name, string expected)
        => Assert.Equal(expected, PrometheusTextExporter.Sanitize(name));
}
