using System.Security.Cryptography;
using System.Text.Json;
using FreeBind.Encoding.Preprocessing;
using FreeBind.Encoding.Preprocessing.Audio;
using Xunit.Abstractions;

namespace FreeBind.Tests.Preprocessing;

/// <summary>
/// The C# <c>clap</c> and <c>clap-fusion</c> inputs against laion_clap's own code, not a twin of
/// ours: tests/fixtures/upstream/clap-audio.json was written by tools/reference/upstream_clap_audio.py
/// running LAION-AI/CLAP at 740d350 (laion_clap 1.1.4, which FreeBind's requirements.txt pins): its
/// <c>get_audio_features</c>, <c>get_mel</c> and int16 round trip in hook.py's order, with only the
/// documented deviations (torchaudio's resampler for librosa's; the middle candidate and the centre
/// crop for its random choices). The fixture keeps, per input, every 2000th waveform sample and six
/// frames of each of the four mel chunks (all 64 bins).
/// </summary>
public sealed class ClapUpstreamTests(ITestOutputHelper output)
{
    // Gates from what is measured on these samples, with margin (docs/preprocessing.md#parity): the
    // waveform within one int16 step (0 measured; end to end a resampled value within ~1e-7 of a
    // rounding boundary can flip one); the mel ≤ 0.1 dB (2.4e-2 measured, train's quiet bins) and
    // ≤ 2e-3 dB on average (3.8e-4 measured). A chunk taken at another start, a missing repeat or a
    // mono mix done otherwise moves whole frames by several dB.
    private const int Int16Steps = 1;
    private const double MelMaxDb = 0.1;
    private const double MelMeanDb = 2e-3;

    private static readonly Lazy<JsonDocument> Fixture = new(() =>
        JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("upstream", "clap-audio.json"))));

    public static TheoryData<string> Inputs => new()
    {
        "BBQ", "toilet", "train",
        "short_1s3_22k", "stereo_44k1", "pcm24_48k", "float_ext_3ch_16k", "pcm8_11k", "long_25s_32k",
    };

    [Theory]
    [MemberData(nameof(Inputs))]
    public void Clap_inputs_equal_what_laion_clap_computes_at_the_pinned_commit(string name)
    {
        var root = Fixture.Value.RootElement;
        Assert.StartsWith("LAION-AI/CLAP 740d350", root.GetProperty("upstream").GetString());
        var item = root.GetProperty("inputs").EnumerateArray().Single(i => i.GetProperty("name").GetString() == name);
        var path = item.GetProperty("root").GetString() == "shared"
            ? TestPaths.Sample(name + ".wav")
            : TestPaths.Data("preprocess", "audio", "inputs", name + ".wav");
        var bytes = File.ReadAllBytes(path);
        Assert.True(item.GetProperty("sha256").GetString() == Convert.ToHexStringLower(SHA256.HashData(bytes)),
            $"{path} is not the file the fixture was computed from: regenerate it with tools/reference/upstream_clap_audio.py");
        var audio = AudioDecoder.Decode(bytes, AudioLimits.From(new PreprocessingOptions()), path);

        var wave = ClapAudio.Waveform(audio);
        var stride = root.GetProperty("waveform_stride").GetInt32();
        var upstreamWave = item.GetProperty("waveform_int16").EnumerateArray().Select(v => v.GetInt32()).ToArray();
        Assert.Equal(wave.Length / stride, upstreamWave.Length);
        var waveSteps = upstreamWave.Select((v, k) => Math.Abs(Math.Round(wave[k * stride] * 32767.0) - v)).Max();

        var fusion = ClapAudio.Fusion(audio);
        var frames = root.GetProperty("frames").EnumerateArray().Select(v => v.GetInt32()).ToArray();
        var chunks = item.GetProperty("mel_fusion_db");
        var (max, sum, n, at) = (0.0, 0.0, 0, "");
        for (var c = 0; c < ClapAudio.FusionShape[1]; c++)
            for (var f = 0; f < frames.Length; f++)
            {
                var bins = chunks[c][f];
                Assert.Equal(ClapAudio.FusionShape[3], bins.GetArrayLength());
                for (var b = 0; b < bins.GetArrayLength(); b++)
                {
                    var d = Math.Abs(fusion[(c * ClapAudio.FusionShape[2] + frames[f]) * ClapAudio.FusionShape[3] + b] - bins[b].GetDouble());
                    (sum, n) = (sum + d, n + 1);
                    if (d > max || double.IsNaN(d)) (max, at) = (d, $"chunk {c}, frame {frames[f]}, bin {b}");
                }
            }
        output.WriteLine($"{name}: waveform ≤ {waveSteps} int16 steps; mel max {max:E2} dB ({at}), mean {sum / n:E2} dB over {n} values");
        Assert.True(waveSteps <= Int16Steps, $"{name}: the waveform is {waveSteps} int16 steps from laion_clap's");
        Assert.True(max <= MelMaxDb, $"{name}: the fusion mel is {max:F3} dB from laion_clap's at {at}");
        Assert.True(sum / n <= MelMeanDb, $"{name}: the fusion mel is {sum / n:E2} dB from laion_clap's on average");
    }
}
