// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace InferenceServer.Observability;

/// <summary>
/// The standard Prometheus <c>process_*</c> series, as the Prometheus client libraries' process collector (and so vLLM)
/// publishes them: <c>process_cpu_seconds_total</c>, <c>process_resident_memory_bytes</c>,
/// <c>process_virtual_memory_bytes</c>, <c>process_start_time_seconds</c>, and on Linux <c>process_open_fds</c> and
/// <c>process_max_fds</c> (from <c>/proc/self</c>; the collector leaves them out elsewhere too). Read once per scrape.
/// </summary>
internal static class ProcessMetricsWriter
{
    /// <summary>Appends the series, with their <c>HELP</c> and <c>TYPE</c> lines, to <paramref name="text"/>.</summary>
    public static void Write(StringBuilder text)
    {
        using var process = Process.GetCurrentProcess();
        Family(text, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", process.TotalProcessorTime.TotalSeconds);
        Family(text, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", process.WorkingSet64);
        Family(text, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", process.VirtualMemorySize64);
        Family(text, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", new DateTimeOffset(process.StartTime.ToUniversalTime()).ToUnixTimeMilliseconds() / 1000.0);
        if (OperatingSystem.IsLinux())
        {
            if (OpenFileDescriptors() is { } open)
            {
                Family(text, "process_open_fds", "gauge", "Number of open file descriptors.", open);
            }

            if (MaxFileDescriptors() is { } max)
            {
                Family(text, "process_max_fds", "gauge", "Maximum number of open file descriptors.", max);
            }
        }
    }

    private static void Family(StringBuilder text, string name, string type, string help, double value)
        => text.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n')
            .Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n')
            .Append(name).Append(' ').Append(value.ToString("R", CultureInfo.InvariantCulture)).Append('\n');

    private static int? OpenFileDescriptors()
    {
        try
        {
            // The enumeration's own descriptor is counted, as the Python collector's os.listdir counts its own.
            return Directory.GetFileSystemEntries("/proc/self/fd").Length;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    // "Max open files            1048576              1048576              files": the soft limit, as the collector reports.
    private static double? MaxFileDescriptors()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/limits"))
            {
                if (line.StartsWith("Max open files", StringComparison.Ordinal))
                {
                    var soft = line["Max open files".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries)[0];
                    return soft == "unlimited" ? double.PositiveInfinity : double.Parse(soft, CultureInfo.InvariantCulture);
                }
            }
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }

        return null;
    }
}
