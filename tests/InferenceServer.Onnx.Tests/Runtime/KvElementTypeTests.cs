// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.Onnx.Tests.Runtime;

public sealed class KvElementTypeTests
{
    [Theory]
    [InlineData(KvElementType.Float32, "float32", 4)]
    [InlineData(KvElementType.Float16, "float16", 2)]
    [InlineData(KvElementType.BFloat16, "bfloat16", 2)]
    public void ElementType_HasItsOnnxName_AndSize(KvElementType type, string name, int bytes)
    {
        Assert.Equal(name, type.ToName());
        Assert.Equal(bytes, type.Bytes());
    }

    [Theory]
    [InlineData(TensorElementType.Float16, KvElementType.Float16)]
    [InlineData(TensorElementType.BFloat16, KvElementType.BFloat16)]
    [InlineData(TensorElementType.Float, KvElementType.Float32)]
    public void FromTensor_MapsThePoolType(TensorElementType tensor, KvElementType expected)
        => Assert.Equal(expected, KvElementTypeExtensions.FromTensor(tensor));

    [Fact]
    public void DenseModel_CachesFloat32()
    {
        using var model = OnnxDecoderModel.Open(ModelPackage.Load(FixturePaths.Fixture("llama-gqa")), new OnnxSessionOptions { Device = "cpu" });
        Assert.Equal(KvElementType.Float32, model.Spec.ElementType);
        Assert.Equal(model.Spec.KvLayers.Sum(static l => (l.KeyHeads * l.KeyWidth) + (l.ValueHeads * l.ValueWidth)) * 4, model.Spec.KvBytesPerToken);
    }
}
