using InferenceServer.Serving;

namespace InferenceServer.Tests.Serving;

public sealed class ApiKeyVerifierTests
{
    private readonly ApiKeyVerifier _verifier = new(["sk-one", "sk-twö"]);

    [Theory]
    [InlineData("Bearer sk-one")]
    [InlineData("bearer sk-one")]
    [InlineData("Bearer sk-twö")]
    [InlineData("Bearer   sk-one  ")]
    public void EitherKey_IsAuthorized(string header) => Assert.True(_verifier.IsAuthorized(header));

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("sk-one")]
    [InlineData("Basic sk-one")]
    [InlineData("Bearer ")]
    [InlineData("Bearer sk-on")]
    [InlineData("Bearer sk-one1")]
    [InlineData("Bearer SK-ONE")]
    [InlineData("Bearer sk-one,sk-two")]
    public void AnythingElse_IsRefused(string? header) => Assert.False(_verifier.IsAuthorized(header));

    [Fact]
    public void LongPresentedKey_IsHashedNotStackAllocated_AndRefused()
        => Assert.False(_verifier.IsAuthorized("Bearer " + new string('k', 100_000)));

    [Fact]
    public void NoKeys_IsDisabled_AndAuthorizesNothing()
    {
        var open = new ApiKeyVerifier([]);
        Assert.False(open.IsEnabled);
        Assert.False(open.IsAuthorized("Bearer "));
        Assert.True(_verifier.IsEnabled);
    }
}
