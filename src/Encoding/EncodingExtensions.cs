using FreeBind.Encoding.Execution;
using FreeBind.Encoding.Experts;
using FreeBind.Encoding.Fusion;
using FreeBind.Encoding.Preprocessing;
using FreeBind.Encoding.Spaces;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace FreeBind.Encoding;

public static class EncodingExtensions
{
    /// <summary>Registers bytes → vectors: spaces, ONNX sessions, preprocessing, experts and bonds.</summary>
    public static IHostApplicationBuilder AddEncoding(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<OnnxOptions>().Bind(builder.Configuration.GetSection(OnnxOptions.Section)).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddOptions<SpacesOptions>().Bind(builder.Configuration.GetSection(SpacesOptions.Section)).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddOptions<PreprocessingOptions>().Bind(builder.Configuration.GetSection("Preprocessing"))
            .Validate(o => o.MaxImagePixels > 0, "Preprocessing:MaxImagePixels must be positive")
            .Validate(o => o.MaxTextLength > 0, "Preprocessing:MaxTextLength must be positive")
            .Validate(o => o.MaxAudioBytes > 0, "Preprocessing:MaxAudioBytes must be positive")
            .Validate(o => o.MaxAudioSeconds > 0 && double.IsFinite(o.MaxAudioSeconds), "Preprocessing:MaxAudioSeconds must be a positive number")
            .Validate(o => o.MaxAudioChannels > 0, "Preprocessing:MaxAudioChannels must be positive")
            .ValidateOnStart();
        builder.Services.AddSingleton(sp => sp.GetRequiredService<IOptions<OnnxOptions>>().Value);
        builder.Services.AddSingleton(sp => sp.GetRequiredService<IOptions<SpacesOptions>>().Value);
        builder.Services.AddSingleton(sp => sp.GetRequiredService<IOptions<PreprocessingOptions>>().Value);
        builder.Services.AddSingleton<ManifestCatalog>();
        builder.Services.AddSingleton<SessionFactory>();
        builder.Services.AddSingleton<EncoderMetrics>();
        builder.Services.AddSingleton<ExpertEncoders>();
        builder.Services.AddSingleton<FusionEngine>();
        builder.Services.AddSingleton<Embedder>();
        return builder;
    }
}
