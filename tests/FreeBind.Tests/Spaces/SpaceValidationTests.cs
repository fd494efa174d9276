using FreeBind.Encoding.Spaces;

namespace FreeBind.Tests.Spaces;

/// <summary>Every manifest problem gets a precise message, all of them at once.</summary>
public sealed class SpaceValidationTests
{
    private static SpaceManifest Manifest(string variant) =>
        SpaceManifest.Parse(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "spaces", variant + ".json")), variant);

    private static string Errors(SpaceManifest manifest, string? root = null, FactorSelection? factors = null) =>
        string.Join("\n", Assert.Throws<SpaceValidationException>(() => SpaceLoader.Build(manifest, root ?? TestPaths.Data("models"), factors)).Errors);

    /// <summary>Mistakes in what the caller chose (not in the manifest): the part and value, and one message each.</summary>
    private static SpaceChoiceError Choice(SpaceManifest manifest, FactorSelection factors) =>
        Assert.Single(Assert.Throws<SpaceChoiceException>(() => SpaceLoader.Build(manifest, TestPaths.Data("models"), factors)).Errors);

    [Theory]
    [InlineData("imagebind")]
    [InlineData("imagebind++")]
    [InlineData("internvl-ib")]
    [InlineData("internvl-ib-ft")]
    [InlineData("internvl-ib++")]
    [InlineData("internvl-ib-ft++")]
    public void Shipped_manifests_validate_against_generated_models(string variant)
    {
        var space = SpaceLoader.Build(Manifest(variant), TestPaths.Data("models"));
        Assert.Matches("^sha256:[0-9a-f]{64}$", space.Version);
        Assert.Equal(3, space.Plans.Count);
    }

    [Fact]
    public void Unknown_expert_and_modality_are_named()
    {
        var m = Manifest("imagebind++");
        m.ProjectorSets["IB_PP_G_Proj"].Source = "clap-generl";
        m.Experts["imagebind"].Modalities["video"] = m.Experts["imagebind"].Modalities["image"];
        var errors = Errors(m);
        Assert.Contains("projector set 'IB_PP_G_Proj': unknown source expert 'clap-generl'", errors);
        Assert.Contains("expert 'imagebind': unknown modality 'video'", errors);
    }

    [Fact]
    public void Dimension_chain_mismatch_is_named()
    {
        // A 512→768 set feeding the 1024-d ImageBind space.
        var m = Manifest("imagebind++");
        m.ProjectorSets["IB_PP_M_Proj"].OutputDimension = 768;
        Assert.Contains("bond 'clap' audio: projector set 'IB_PP_M_Proj' outputs 768-d but the space it combines into is 1024-d here", Errors(m));
    }

    [Fact]
    public void Projector_file_shape_disagreeing_with_the_manifest_is_named()
    {
        // Point the 512→1024 set at files of a 512→768 set.
        var m = Manifest("imagebind++");
        m.ProjectorSets["IB_PP_G_Proj"].Files = m.ProjectorSets["IB_PP_G_Proj"].Files.Select(f => f.Replace("IB_PP_G_Proj", "InternVL_IB_PP_G_Proj")).ToList();
        var errors = Errors(m);
        Assert.Contains("projector set 'IB_PP_G_Proj' file 'InternVL_IB_PP_G_Proj/mix/best.onnx': output shape [?,768] disagrees with the manifest's dimension 1024", errors);
    }

    [Fact]
    public void Missing_and_unreadable_files_are_named()
    {
        var root = Directory.CreateTempSubdirectory("freebind-models-").FullName;
        try
        {
            var models = TestPaths.Data("models");
            foreach (var file in SpaceLoader.ReferencedFiles(Manifest("imagebind++")))
            {
                Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(root, file))!);
                File.CreateSymbolicLink(Path.Combine(root, file), Path.Combine(models, file));
            }
            File.Delete(Path.Combine(root, "IB_PP_M_Proj/TV/best.onnx"));
            var missing = Errors(Manifest("imagebind++"), root);
            Assert.Contains("missing file 'IB_PP_M_Proj/TV/best.onnx'", missing);

            File.WriteAllBytes(Path.Combine(root, "IB_PP_M_Proj/TV/best.onnx"), [0x08, 0xFF, 0xFF, 0x13, 0x37]);
            var unreadable = Errors(Manifest("imagebind++"), root);
            Assert.Contains("projector set 'IB_PP_M_Proj' file 'IB_PP_M_Proj/TV/best.onnx':", unreadable);
            Assert.Contains("is not a readable ONNX model", unreadable);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void Factor_outside_unit_interval_is_refused()
    {
        var m = Manifest("internvl-ib++");
        m.Bonds[0].Factors["image"] = 1.5;
        Assert.Contains("bond 'internvl' image: factor 1.5 is outside [0,1]", Errors(m));
        // The same mistake on the command line is the caller's, and says so.
        Assert.Equal(new SpaceChoiceError(SpaceChoice.Factor, "clap.audio=-0.1", "factor 'clap.audio=-0.1' is outside [0, 1]"),
            Choice(Manifest("internvl-ib++"), FactorSelection.Parse(null, ["clap.audio=-0.1"])));
        Assert.Equal(SpaceChoice.Factor, Choice(Manifest("internvl-ib++"), FactorSelection.Parse(null, ["text=NaN"])).Part);
    }

    [Fact]
    public void Empty_projector_set_is_refused()
    {
        var m = Manifest("internvl-ib");
        m.ProjectorSets["InternVL_IB_Proj"].Files.Clear();
        Assert.Contains("projector set 'InternVL_IB_Proj' is empty: it needs at least one projector file", Errors(m));
    }

    [Fact]
    public void Factors_must_match_the_modalities_a_bond_blends()
    {
        var m = Manifest("internvl-ib");
        m.Bonds[0].Factors["audio"] = 0.3;
        m.Bonds[0].Factors.Remove("text");
        var errors = Errors(m);
        Assert.Contains("bond 'internvl' has a factor for audio but expert 'internvl-c' does not encode audio", errors);
        Assert.Contains("bond 'internvl' needs a factor for text (expert 'internvl-c' encodes text)", errors);
    }

    [Fact]
    public void Unknown_preset_bond_and_profile_are_named()
    {
        Assert.Equal(new SpaceChoiceError(SpaceChoice.Preset, "versatile", "space 'internvl-ib' has no preset 'versatile' (presets: none)"),
            Choice(Manifest("internvl-ib"), new FactorSelection("versatile", [])));
        Assert.Equal(new SpaceChoiceError(SpaceChoice.Factor, "vlc.image=0.2", "factor 'vlc.image=0.2': space 'imagebind++' has no bond 'vlc' (bonds: clap)"),
            Choice(Manifest("imagebind++"), FactorSelection.Parse(null, ["vlc.image=0.2"])));
        // A preset the manifest itself gets wrong is the manifest's error.
        var broken = Manifest("imagebind++");
        broken.Presets["versatile"]["vlc"] = new() { ["image"] = 0.2 };
        Assert.Contains("preset 'versatile': space 'imagebind++' has no bond 'vlc' (bonds: clap)", Errors(broken, factors: new FactorSelection("versatile", [])));
        var m = Manifest("imagebind");
        m.Experts["imagebind"].Modalities["image"].Profile = "imagebind-visoin";
        Assert.Contains("expert 'imagebind' image: unknown preprocessing profile 'imagebind-visoin'", Errors(m));
    }

    [Fact]
    public void Unknown_manifest_fields_are_errors_not_silently_ignored()
    {
        var json = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "spaces", "imagebind.json")).Replace("\"bonds\"", "\"bondz\"");
        var error = Assert.Throws<SpaceValidationException>(() => SpaceManifest.Parse(json, "typo.json"));
        Assert.Contains("bondz", error.Message);
    }

    [Fact]
    public void A_space_version_changes_when_any_referenced_file_changes()
    {
        var root = Directory.CreateTempSubdirectory("freebind-models-").FullName;
        try
        {
            var models = TestPaths.Data("models");
            foreach (var file in SpaceLoader.ReferencedFiles(Manifest("imagebind")))
            {
                Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(root, file))!);
                File.Copy(Path.Combine(models, file), Path.Combine(root, file));
            }
            var before = SpaceLoader.Build(Manifest("imagebind"), root).Version;
            Assert.Equal(SpaceLoader.Build(Manifest("imagebind"), models).Version, before);
            File.AppendAllText(Path.Combine(root, "tokenizers/clip/bpe_simple_vocab_16e6.txt.gz"), "x");
            Assert.NotEqual(before, SpaceLoader.Build(Manifest("imagebind"), root).Version);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
