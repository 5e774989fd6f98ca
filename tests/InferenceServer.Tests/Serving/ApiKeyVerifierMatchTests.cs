using InferenceServer.Serving;
using Microsoft.Extensions.Primitives;

namespace InferenceServer.Tests.Serving;

public sealed class ApiKeyVerifierMatchTests
{
    private static readonly ApiKeyVerifier Keys = new(["sk-one", "sk-two-longer"]);

    [Theory]
    [InlineData("Bearer sk-one", 0)]
    [InlineData("bearer sk-two-longer", 1)]
    [InlineData("BEARER   sk-one  ", 0)]
    [InlineData("Bearer sk-on", -1)]
    [InlineData("Bearer sk-one-", -1)]
    [InlineData("Bearer SK-ONE", -1)]
    [InlineData("Bearer ", -1)]
    [InlineData("Bearer", -1)]
    [InlineData("sk-one", -1)]
    [InlineData("Basic sk-one", -1)]
    [InlineData("", -1)]
    public void Match_FindsTheKey_OrNone(string header, int expected) => Assert.Equal(expected, Keys.Match(header));

    [Fact]
    public void Match_TwoHeadersOrNone_IsNoKey()
    {
        Assert.Equal(-1, Keys.Match(new StringValues(["Bearer sk-one", "Bearer sk-one"])));
        Assert.Equal(-1, Keys.Match(StringValues.Empty));
        Assert.Equal(0, new ApiKeyVerifier([]).Count);
    }
}
