// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Checkpoint;

namespace InferenceServer.Builder.Tests.Checkpoint;

public sealed class RopeTablesTests
{
    [Fact]
    public void Default_InverseFrequencies_AreThetaPowers()
    {
        var (inverse, factor) = RopeTables.InverseFrequencies(new RopeScaling { Type = "default", Theta = 10000 }, 16);
        Assert.Equal(8, inverse.Length);
        for (var i = 0; i < 8; i++)
        {
            Assert.Equal(Math.Pow(10000, -2.0 * i / 16), inverse[i], 1e-7);
        }

        Assert.Equal(1f, factor);
    }

    [Fact]
    public void Linear_DividesEveryFrequencyByTheFactor()
    {
        var (baseline, _) = RopeTables.InverseFrequencies(new RopeScaling { Type = "default", Theta = 10000 }, 64);
        var (linear, _) = RopeTables.InverseFrequencies(new RopeScaling { Type = "linear", Theta = 10000, Factor = 4 }, 64);
        for (var i = 0; i < baseline.Length; i++)
        {
            Assert.Equal(baseline[i] / 4, linear[i], 1e-9);
        }
    }

    [Fact]
    public void Llama3_KeepsHighFrequencies_ScalesLowOnes_SmoothsBetween()
    {
        // Llama 3.1 settings: wavelengths under 8192/4 keep their frequency, over 8192/1 are divided by 8.
        var rope = new RopeScaling { Type = "llama3", Theta = 500000, Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 8192 };
        var (baseline, _) = RopeTables.InverseFrequencies(new RopeScaling { Type = "default", Theta = 500000 }, 128);
        var (scaled, _) = RopeTables.InverseFrequencies(rope, 128);
        var sawHigh = false;
        var sawLow = false;
        var sawMiddle = false;
        for (var i = 0; i < baseline.Length; i++)
        {
            var wavelength = 2 * Math.PI / baseline[i];
            if (wavelength < 8192 / 4.0)
            {
                Assert.Equal(baseline[i], scaled[i]);
                sawHigh = true;
            }
            else if (wavelength > 8192)
            {
                Assert.Equal(baseline[i] / 8, scaled[i], 1e-9);
                sawLow = true;
            }
            else
            {
                Assert.InRange(scaled[i], baseline[i] / 8, baseline[i]);
                sawMiddle = true;
            }
        }

        Assert.True(sawHigh && sawLow && sawMiddle);
    }

    [Fact]
    public void Yarn_ExtrapolatesFastDims_InterpolatesSlowOnes_AndScalesCosSin()
    {
        var rope = new RopeScaling { Type = "yarn", Theta = 10000, Factor = 4, OriginalMaxPositionEmbeddings = 4096 };
        var (baseline, _) = RopeTables.InverseFrequencies(new RopeScaling { Type = "default", Theta = 10000 }, 64);
        var (scaled, factor) = RopeTables.InverseFrequencies(rope, 64);
        Assert.Equal(baseline[0], scaled[0], 1e-7);
        Assert.Equal(baseline[^1] / 4, scaled[^1], 1e-9);
        Assert.Equal((float)((0.1 * Math.Log(4)) + 1), factor, 1e-6f);

        var (cos, sin) = RopeTables.Tables(rope, 64, 2);
        Assert.Equal(factor, cos[0], 1e-6f);
        Assert.Equal(0f, sin[0]);
        Assert.Equal(factor * (float)Math.Sin(scaled[1]), sin[32 + 1], 1e-6f);
    }
}
