// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Tests;

/// <summary>A clock stopped at one instant, in UTC, so that <c>strftime_now</c> is deterministic.</summary>
internal sealed class FixedTimeProvider(DateTimeOffset now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => now;

    public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;
}
