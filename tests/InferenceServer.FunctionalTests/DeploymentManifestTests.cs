using System.Globalization;
using InferenceServer.FunctionalTests.Infrastructure;
using InferenceServer.Hosting;
using Microsoft.Extensions.Configuration;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.Serialization;

namespace InferenceServer.FunctionalTests;

/// <summary>
/// The deployment files parse (YamlDotNet) and say what the README promises: both Kubernetes deployments serve a model
/// from a read-only volume with the build cache on a writable one, are hardened (non-root, read-only root file system,
/// no capabilities), probe /health/live and /health/ready, drain for as long as the longest request, and pass
/// arguments the server reads; the GPU one asks for CUDA and sizes its cache; the CPU one matches its threads to its CPU
/// request. Kustomize's resources exist, the PodMonitor and HPA point at the deployment and the adapter's metric, and
/// compose builds one image, limits each replica and mounts the model read-only.
/// </summary>
public sealed class DeploymentManifestTests
{
    private static readonly string Kubernetes = Path.Combine(RepositoryPaths.Root, "deploy", "kubernetes");

    private static List<object> Documents(string path)
    {
        var deserializer = new DeserializerBuilder().Build();
        // Merge keys (<<: *anchor) applied, as Docker Compose applies them.
        var parser = new MergingParser(new Parser(new StringReader(File.ReadAllText(path))));
        parser.Consume<StreamStart>();
        var documents = new List<object>();
        while (parser.Accept<DocumentStart>(out _))
        {
            documents.Add(deserializer.Deserialize<object>(parser)!);
        }

        return documents;
    }

    private static Dictionary<object, object> Map(object? node) => Assert.IsType<Dictionary<object, object>>(node);

    private static object? At(object node, params string[] path)
    {
        foreach (var key in path)
        {
            if (node is not Dictionary<object, object> map || !map.TryGetValue(key, out var next))
            {
                return null;
            }

            node = next;
        }

        return node;
    }

    private static List<object> List(object node, params string[] path) => Assert.IsType<List<object>>(At(node, path));

    private static string Text(object node, params string[] path) => Assert.IsType<string>(At(node, path));

    /// <summary>"--key=value" and "--key value" arguments as a dictionary (flags without a value: "true").</summary>
    private static Dictionary<string, string> Flags(IEnumerable<string> args)
    {
        var flags = new Dictionary<string, string>(StringComparer.Ordinal);
        var list = args.ToList();
        for (var i = 0; i < list.Count; i++)
        {
            Assert.StartsWith("--", list[i], StringComparison.Ordinal);
            var equals = list[i].IndexOf('=', StringComparison.Ordinal);
            if (equals > 0)
            {
                flags.Add(list[i][2..equals], list[i][(equals + 1)..]);
            }
            else
            {
                flags.Add(list[i][2..], i + 1 < list.Count && !list[i + 1].StartsWith("--", StringComparison.Ordinal) ? list[++i] : "true");
            }
        }

        return flags;
    }

    [Theory]
    [InlineData("hpa.yaml")]
    [InlineData("kustomization.yaml")]
    [InlineData("model-pvc.yaml")]
    [InlineData("model-loader.yaml")]
    [InlineData("podmonitor.yaml")]
    [InlineData("prometheus-adapter-rules.yaml")]
    [InlineData("service.yaml")]
    public void KubernetesFiles_Parse_WithAKind(string file)
    {
        foreach (var document in Documents(Path.Combine(Kubernetes, file)))
        {
            Assert.False(string.IsNullOrEmpty(Text(document, "kind")));
            Assert.False(string.IsNullOrEmpty(Text(document, "apiVersion")));
        }
    }

    [Theory]
    [InlineData("deployment.yaml", false)]
    [InlineData("deployment-gpu.yaml", true)]
    public void Deployments_ServeAModelFromAReadOnlyVolume_Hardened_Probed_AndDrainForTheLongestRequest(string file, bool gpu)
    {
        var deployment = Assert.Single(Documents(Path.Combine(Kubernetes, file)));
        Assert.Equal("Deployment", Text(deployment, "kind"));
        var pod = At(deployment, "spec", "template", "spec")!;
        var container = Assert.Single(List(pod, "containers"));
        var flags = Flags(List(container, "args").Cast<string>());

        // The arguments are ones the server reads, with valid values.
        var options = ServerOptions.FromConfiguration(new ConfigurationBuilder().AddCommandLine(InferenceServer.Hosting.CommandLine.ServerCommandLine.Parse([.. List(container, "args").Cast<string>()]).ToConfigurationArgs()).Build());
        Assert.Equal(TimeSpan.FromSeconds(300), options.LivenessStallTimeout);

        // The model: on the PVC, mounted read-only; the build cache: on a writable emptyDir.
        var volumes = List(pod, "volumes").ToDictionary(v => Text(v, "name"));
        var mounts = List(container, "volumeMounts").ToDictionary(m => Text(m, "mountPath"));
        Assert.All(mounts.Values, m => Assert.Contains(Text(m, "name"), volumes.Keys));
        var modelMount = Assert.Single(mounts.Values, m => flags["model"].StartsWith(Text(m, "mountPath"), StringComparison.Ordinal));
        Assert.Equal("true", Text(modelMount, "readOnly"));
        var modelVolume = volumes[Text(modelMount, "name")];
        Assert.Equal("inference-model", Text(modelVolume, "persistentVolumeClaim", "claimName"));
        Assert.Equal("true", Text(modelVolume, "persistentVolumeClaim", "readOnly"));
        var cacheMount = Assert.Single(mounts.Values, m => flags["build-cache"].StartsWith(Text(m, "mountPath"), StringComparison.Ordinal));
        Assert.Null(At(cacheMount, "readOnly"));
        Assert.NotNull(At(volumes[Text(cacheMount, "name")], "emptyDir"));
        Assert.Contains("/tmp", mounts.Keys);

        // Hardening.
        Assert.Equal("true", Text(pod, "securityContext", "runAsNonRoot"));
        Assert.NotEqual("0", Text(pod, "securityContext", "runAsUser"));
        Assert.Equal("true", Text(container, "securityContext", "readOnlyRootFilesystem"));
        Assert.Equal("false", Text(container, "securityContext", "allowPrivilegeEscalation"));
        Assert.Equal(["ALL"], List(container, "securityContext", "capabilities", "drop").Cast<string>());

        // Probes: liveness on /health/live (the stall bound), readiness and start-up on /health/ready, on a named port.
        var ports = List(container, "ports").Select(p => Text(p, "name")).ToList();
        Assert.Equal("/health/live", Text(container, "livenessProbe", "httpGet", "path"));
        Assert.Equal("/health/ready", Text(container, "readinessProbe", "httpGet", "path"));
        Assert.Equal("/health/ready", Text(container, "startupProbe", "httpGet", "path"));
        Assert.Contains(Text(container, "livenessProbe", "httpGet", "port"), ports);

        // The drain covers the longest request: --shutdown-timeout >= --max-request-timeout, and the grace period covers
        // preStop + --shutdown-timeout + the host's 15 s to stop after the drain.
        var shutdown = int.Parse(flags["shutdown-timeout"], CultureInfo.InvariantCulture);
        Assert.True(shutdown >= double.Parse(flags["max-request-timeout"], CultureInfo.InvariantCulture));
        var preStop = List(container, "lifecycle", "preStop", "exec", "command").Cast<string>().ToList();
        Assert.Equal("sleep", preStop[0]);
        var grace = int.Parse(Text(pod, "terminationGracePeriodSeconds"), CultureInfo.InvariantCulture);
        Assert.True(grace >= int.Parse(preStop[1], CultureInfo.InvariantCulture) + shutdown + 15, $"terminationGracePeriodSeconds {grace} is shorter than the drain");

        if (gpu)
        {
            Assert.Equal("cuda", flags["device"]);
            Assert.Equal("0.9", flags["gpu-memory-utilization"]);
            Assert.Equal("1", Text(container, "resources", "limits", "nvidia.com/gpu"));
        }
        else
        {
            Assert.Equal(Text(container, "resources", "requests", "cpu"), flags["threads"]);
            Assert.Equal(flags["threads"], options.Session.IntraOpThreads.ToString(CultureInfo.InvariantCulture));
        }
    }

    [Fact]
    public void Kustomization_ListsExistingFiles_WithTheScrapeTheHpaNeeds_AndTheHpaMetricIsTheAdaptersRule()
    {
        var kustomization = Assert.Single(Documents(Path.Combine(Kubernetes, "kustomization.yaml")));
        var resources = List(kustomization, "resources").Cast<string>().ToList();
        Assert.All(resources, r => Assert.True(File.Exists(Path.Combine(Kubernetes, r)), r));
        Assert.Contains("podmonitor.yaml", resources);
        Assert.Contains("model-pvc.yaml", resources);

        var deployment = Assert.Single(Documents(Path.Combine(Kubernetes, "deployment.yaml")));
        var labels = Map(At(deployment, "spec", "template", "metadata", "labels"));
        var monitor = Assert.Single(Documents(Path.Combine(Kubernetes, "podmonitor.yaml")));
        Assert.All(Map(At(monitor, "spec", "selector", "matchLabels")), pair => Assert.Equal(pair.Value, labels[pair.Key]));
        var endpoint = Assert.Single(List(monitor, "spec", "podMetricsEndpoints"));
        Assert.Equal("/metrics", Text(endpoint, "path"));

        var hpa = Assert.Single(Documents(Path.Combine(Kubernetes, "hpa.yaml")));
        var metric = Text(Assert.Single(List(hpa, "spec", "metrics")), "pods", "metric", "name");
        var adapter = Assert.Single(Documents(Path.Combine(Kubernetes, "prometheus-adapter-rules.yaml")));
        var rules = Assert.Single(new DeserializerBuilder().Build().Deserialize<Dictionary<object, object>>(Text(adapter, "data", "config.yaml")));
        var rule = Assert.Single(Assert.IsType<List<object>>(rules.Value));
        Assert.Equal(metric, Text(rule, "name", "as"));
    }

    [Fact]
    public void Compose_BuildsOneImage_LimitsEachReplica_AndMountsTheModelReadOnly()
    {
        var compose = Assert.Single(Documents(Path.Combine(RepositoryPaths.Root, "docker-compose.yml")));
        var services = Map(At(compose, "services"));
        var replicas = services.Where(s => ((string)s.Key).StartsWith("inference-", StringComparison.Ordinal)).Select(s => s.Value).ToList();
        Assert.Equal(2, replicas.Count);

        // One image, built once: one replica has build:, every replica runs the same image tag.
        Assert.Single(replicas, r => At(r, "build") is not null);
        Assert.Single(replicas.Select(r => Text(r, "image")).Distinct());
        Assert.All(replicas.Where(r => At(r, "build") is null), r => Assert.Equal("never", Text(r, "pull_policy")));

        foreach (var replica in replicas)
        {
            Assert.False(string.IsNullOrEmpty(Text(replica, "deploy", "resources", "limits", "cpus")));
            Assert.False(string.IsNullOrEmpty(Text(replica, "deploy", "resources", "limits", "memory")));
            var flags = Flags(List(replica, "command").Cast<string>());
            var volumes = List(replica, "volumes").Cast<string>().ToList();
            Assert.Contains(volumes, v => v.EndsWith(":" + flags["model"] + ":ro", StringComparison.Ordinal));
            Assert.Contains(volumes, v => v.EndsWith(":" + flags["build-cache"], StringComparison.Ordinal));
            Assert.Equal("true", Text(replica, "read_only"));
            Assert.Equal(Text(replica, "deploy", "resources", "limits", "cpus"), flags["threads"]);

            // Docker stops the container only after the drain and the host's 15 s stop.
            var grace = int.Parse(Text(replica, "stop_grace_period").TrimEnd('s'), CultureInfo.InvariantCulture);
            Assert.True(grace > int.Parse(flags["shutdown-timeout"], CultureInfo.InvariantCulture) + 15, $"stop_grace_period {grace}s is shorter than the drain");
        }
    }
}
