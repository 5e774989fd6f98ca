using InferenceServer.Engine.Requests;
using InferenceServer.Engine.Sampling;

namespace InferenceServer.Engine.Tests.Sampling;

public sealed class SamplerTests
{
    private static readonly float[] Logits = [0.1f, 2.5f, -1f, 2.5f, 1.9f, 0.0f];

    [Fact]
    public void ArgMax_PicksFirstOfTies_LikeTorch()
    {
        Assert.Equal(1, Sampler.ArgMax(Logits, []));
    }

    [Fact]
    public void ArgMax_SkipsBanned()
    {
        Assert.Equal(3, Sampler.ArgMax(Logits, [1]));
        Assert.Equal(4, Sampler.ArgMax(Logits, [1, 3]));
    }

    [Fact]
    public void Greedy_IgnoresRandomness()
    {
        var sampler = new Sampler();
        var random = new SeededRandom(1);
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal(1, sampler.Sample(Logits, SamplingParameters.Greedy, ref random, []));
        }
    }

    [Fact]
    public void TopK1_IsGreedy()
    {
        var sampler = new Sampler();
        var random = new SeededRandom(7);
        var parameters = new SamplingParameters { Temperature = 5, TopK = 1 };
        Assert.Equal(1, sampler.Sample(Logits, parameters, ref random, []));
    }

    [Fact]
    public void SameSeed_SameDraws_DifferentSeed_DifferentDraws()
    {
        var sampler = new Sampler();
        var parameters = new SamplingParameters { Temperature = 1.5 };
        int[] Draw(long seed)
        {
            var random = new SeededRandom(seed);
            return Enumerable.Range(0, 64).Select(_ => sampler.Sample(Logits, parameters, ref random, [])).ToArray();
        }

        Assert.Equal(Draw(42), Draw(42));
        Assert.NotEqual(Draw(42), Draw(43));
    }

    [Fact]
    public void TopK_RestrictsToTheBestK()
    {
        var sampler = new Sampler();
        var random = new SeededRandom(3);
        var parameters = new SamplingParameters { Temperature = 100, TopK = 3 };
        var seen = new HashSet<int>();
        for (var i = 0; i < 500; i++)
        {
            seen.Add(sampler.Sample(Logits, parameters, ref random, []));
        }

        Assert.Equal(new HashSet<int> { 1, 3, 4 }, seen);
    }

    [Fact]
    public void TopP_KeepsTheNucleusOnly()
    {
        // Probabilities at temperature 1: token 0 holds ~0.88, so top_p 0.5 leaves it alone.
        float[] logits = [4f, 2f, 0f, -1f];
        var sampler = new Sampler();
        var random = new SeededRandom(11);
        var parameters = new SamplingParameters { Temperature = 1, TopP = 0.5 };
        for (var i = 0; i < 200; i++)
        {
            Assert.Equal(0, sampler.Sample(logits, parameters, ref random, []));
        }
    }

    [Fact]
    public void Sampling_FollowsTheDistribution()
    {
        float[] logits = [0f, MathF.Log(3f)];
        var sampler = new Sampler();
        var random = new SeededRandom(5);
        var parameters = new SamplingParameters { Temperature = 1 };
        var ones = 0;
        const int Draws = 20000;
        for (var i = 0; i < Draws; i++)
        {
            ones += sampler.Sample(logits, parameters, ref random, []);
        }

        Assert.InRange(ones / (double)Draws, 0.73, 0.77);
    }

    [Theory]
    [InlineData(1.0, 0.5)]
    [InlineData(2.0, 0.5)]
    [InlineData(0.5, 0.05)]
    public void MinP_KeepsTokensAtLeastThatFractionOfTheBest_AfterTemperature(double temperature, double minP)
    {
        // Relative probabilities at temperature T: exp((l - max) / T); a token survives when that is >= min_p.
        var sampler = new Sampler();
        var random = new SeededRandom(21);
        var parameters = new SamplingParameters { Temperature = temperature, MinP = minP };
        var max = Logits.Max();
        var allowed = Enumerable.Range(0, Logits.Length).Where(i => Math.Exp((Logits[i] - max) / temperature) >= minP).ToHashSet();
        var seen = new HashSet<int>();
        for (var i = 0; i < 2000; i++)
        {
            seen.Add(sampler.Sample(Logits, parameters, ref random, []));
        }

        Assert.Equal(allowed, seen);
    }

    [Fact]
    public void MinP_One_IsGreedyAmongTies()
    {
        var sampler = new Sampler();
        var random = new SeededRandom(2);
        var parameters = new SamplingParameters { Temperature = 1, MinP = 1 };
        for (var i = 0; i < 100; i++)
        {
            Assert.Contains(sampler.Sample(Logits, parameters, ref random, []), new[] { 1, 3 });
        }
    }

    [Fact]
    public void Banned_IsNeverSampled()
    {
        var sampler = new Sampler();
        var random = new SeededRandom(9);
        var parameters = new SamplingParameters { Temperature = 2 };
        for (var i = 0; i < 300; i++)
        {
            Assert.NotEqual(1, sampler.Sample(Logits, parameters, ref random, [1]));
        }
    }
}
