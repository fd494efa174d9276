using System.Security.Cryptography;
using FreeBind.Encoding.Preprocessing;

namespace FreeBind.Encoding.Spaces;

/// <summary>Loads a manifest, applies factor choices, validates it against its files, and versions it.</summary>
public static class SpaceLoader
{
    /// <summary>Loads and validates <paramref name="manifestPath"/> with files under <paramref name="modelRoot"/>.</summary>
    public static SpaceDefinition Load(string manifestPath, string modelRoot, FactorSelection? factors = null, bool checkFiles = true) =>
        Build(ReadManifest(manifestPath), modelRoot, factors, checkFiles);

    /// <summary>Loads <paramref name="manifestPath"/> with files under <paramref name="modelRoot"/> as <paramref name="options"/> say.</summary>
    public static SpaceDefinition Load(string manifestPath, string modelRoot, SpaceLoadOptions options) =>
        Build(ReadManifest(manifestPath), modelRoot, options);

    /// <summary>Reads and parses a manifest file; a file that does not exist is the caller's choice gone wrong, not a manifest error.</summary>
    public static SpaceManifest ReadManifest(string manifestPath)
    {
        string json;
        try
        {
            json = File.ReadAllText(manifestPath);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new SpaceChoiceException(SpaceChoice.Space, manifestPath, $"no manifest file '{manifestPath}'");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SpaceValidationException([$"cannot read manifest '{manifestPath}': {e.Message}"]);
        }
        return SpaceManifest.Parse(json, manifestPath);
    }

    /// <summary>Validates <paramref name="manifest"/> with every file under <paramref name="modelRoot"/> (<see cref="SpaceUse.Embed"/>).</summary>
    /// <param name="manifest">The manifest (not modified: factors are applied to a copy).</param>
    /// <param name="modelRoot">Folder the manifest's file paths are relative to.</param>
    /// <param name="factors">Preset and factor overrides.</param>
    /// <param name="checkFiles">False skips every file (no version: all zeros); for manifest-only checks.</param>
    public static SpaceDefinition Build(SpaceManifest manifest, string modelRoot, FactorSelection? factors = null, bool checkFiles = true)
    {
        var options = new SpaceLoadOptions { Factors = factors ?? FactorSelection.None };
        return checkFiles ? Build(manifest, modelRoot, options) : BuildUnchecked(manifest, modelRoot, options);
    }

    /// <summary>
    /// Validates <paramref name="manifest"/> with its files under <paramref name="modelRoot"/> and names
    /// its version. With <see cref="SpaceUse.Fuse"/> only projector files are read; the others'
    /// digests come from <see cref="SpaceLoadOptions.KnownFiles"/> (or from the files, if present),
    /// and the version is the same as a full load's.
    /// </summary>
    /// <exception cref="SpaceChoiceException">An unknown preset, a bad factor override, or a model root without the space's files.</exception>
    /// <exception cref="SpaceValidationException">Everything wrong with the manifest or its files, at once.</exception>
    public static SpaceDefinition Build(SpaceManifest manifest, string modelRoot, SpaceLoadOptions options)
    {
        var (effective, plans) = Plan(manifest, options.Factors);
        var root = Path.GetFullPath(modelRoot);
        var files = SpaceFileCheck.Run(effective, root, options);
        return new SpaceDefinition(effective, root, Digest(effective, files), plans, files, options.Use);
    }

    /// <summary>The <c>format</c> of <see cref="SpaceDefinition.ToJson"/> documents.</summary>
    public const string StoredFormat = "freebind-space-version/1";

    /// <summary>
    /// Reloads a stored version (<see cref="SpaceDefinition.ToJson"/>) for fusion on this machine: its
    /// effective manifest, the projector files under <paramref name="modelRoot"/> (read, and checked
    /// against the stored digests), the encoders' and tokenizers' digests from the document (their
    /// files are never read). The version is recomputed and must equal the stored one. This is the
    /// backfill's way to re-fuse stored atoms into a version without encoders.
    /// </summary>
    /// <param name="document">The JSON document stored with the version.</param>
    /// <param name="modelRoot">Folder holding (at least) the version's projector files.</param>
    /// <param name="digests">Digest cache for the projector files; default in-process.</param>
    /// <exception cref="SpaceValidationException">A projector file is missing or differs from the version's, or the document is inconsistent.</exception>
    public static SpaceDefinition LoadStored(string document, string modelRoot, FileDigestCache? digests = null)
    {
        System.Text.Json.Nodes.JsonObject root;
        try
        {
            root = System.Text.Json.Nodes.JsonNode.Parse(document) as System.Text.Json.Nodes.JsonObject
                ?? throw new FormatException("not a JSON object");
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or FormatException)
        {
            throw new SpaceValidationException([$"stored space version is not a JSON document: {e.Message}"]);
        }
        if ((string?)root["format"] != StoredFormat || root["manifest"] is not System.Text.Json.Nodes.JsonObject manifestJson || (string?)root["version"] is not { } stored)
            throw new SpaceValidationException([$"stored space version is not a '{StoredFormat}' document with a manifest and a version"]);
        var manifest = SpaceManifest.Parse(manifestJson.ToJsonString(), "stored manifest");
        SpaceFiles files;
        try
        {
            files = SpaceFiles.Parse(document, "stored space version");
        }
        catch (FormatException e)
        {
            throw new SpaceValidationException([e.Message], manifest.Name);
        }
        var space = Build(manifest, modelRoot, new SpaceLoadOptions { Use = SpaceUse.Fuse, KnownFiles = files, Digests = digests });
        if (space.Version != stored)
            throw new SpaceValidationException([$"the stored document names version {stored} but its manifest and digests give {space.Version}: it was edited or written by another format"], manifest.Name);
        return space;
    }

    private static SpaceDefinition BuildUnchecked(SpaceManifest manifest, string modelRoot, SpaceLoadOptions options)
    {
        var (effective, plans) = Plan(manifest, options.Factors);
        return new SpaceDefinition(effective, Path.GetFullPath(modelRoot), "sha256:" + new string('0', 64), plans, SpaceFiles.Empty, SpaceUse.Embed);
    }

    private static (SpaceManifest Effective, Dictionary<Modality, ModalityPlan> Plans) Plan(SpaceManifest manifest, FactorSelection factors)
    {
        var effective = manifest.Clone();
        var errors = new List<string>();
        var choices = new List<SpaceChoiceError>();
        ApplyFactors(effective, factors, errors, choices);
        if (choices.Count > 0) throw new SpaceChoiceException(choices);
        if (errors.Count > 0) throw new SpaceValidationException(errors, manifest.Name);
        var plans = Validate(effective, errors);
        if (errors.Count > 0) throw new SpaceValidationException(errors, manifest.Name);
        return (effective, plans);
    }

    private static void ApplyFactors(SpaceManifest m, FactorSelection selection, List<string> errors, List<SpaceChoiceError> choices)
    {
        if (selection.Preset is { } preset)
        {
            if (!m.Presets.TryGetValue(preset, out var byBond))
            {
                choices.Add(new SpaceChoiceError(SpaceChoice.Preset, preset,
                    $"space '{m.Name}' has no preset '{preset}' (presets: {(m.Presets.Count == 0 ? "none" : string.Join(", ", m.Presets.Keys))})"));
                return;
            }
            // A preset's own entries are the manifest's: their mistakes are manifest errors.
            foreach (var (bondId, factors) in byBond)
                foreach (var (modality, f) in factors)
                    if (Set(m, new FactorOverride(bondId, modality, f)) is { } error) errors.Add($"preset '{preset}': {error}");
        }
        foreach (var o in selection.Overrides)
        {
            var text = o.ToString();
            if (double.IsNaN(o.Factor) || o.Factor < 0 || o.Factor > 1)
                choices.Add(new SpaceChoiceError(SpaceChoice.Factor, text, $"factor '{text}' is outside [0, 1]"));
            else if (Set(m, o) is { } error)
                choices.Add(new SpaceChoiceError(SpaceChoice.Factor, text, $"factor '{text}': {error}"));
        }
    }

    private static string? Set(SpaceManifest m, FactorOverride o)
    {
        BondSpec? bond = o.Bond is null
            ? m.Bonds.LastOrDefault(b => b.Factors.ContainsKey(o.Modality))
            : m.Bonds.FirstOrDefault(b => b.Id == o.Bond);
        if (bond is null)
            return o.Bond is null
                ? $"no bond of space '{m.Name}' blends modality '{o.Modality}', so it has no factor to set"
                : $"space '{m.Name}' has no bond '{o.Bond}' (bonds: {string.Join(", ", m.Bonds.Select(b => b.Id))})";
        if (!bond.Factors.ContainsKey(o.Modality))
            return $"bond '{bond.Id}' does not blend modality '{o.Modality}' (it has factors for {string.Join(", ", bond.Factors.Keys)})";
        bond.Factors[o.Modality] = o.Factor;
        return null;
    }

    private static Dictionary<Modality, ModalityPlan> Validate(SpaceManifest m, List<string> errors)
    {
        var plans = new Dictionary<Modality, ModalityPlan>();
        if (string.IsNullOrWhiteSpace(m.Name)) errors.Add("name is empty");
        if (m.Dimension <= 0) errors.Add($"dimension must be positive, got {m.Dimension}");
        foreach (var (name, expert) in m.Experts)
        {
            if (expert.Dimension <= 0) errors.Add($"expert '{name}': dimension must be positive");
            if (expert.Modalities.Count == 0) errors.Add($"expert '{name}' declares no modality");
            foreach (var (modality, spec) in expert.Modalities)
            {
                if (!ModalityNames.TryParse(modality, out _)) errors.Add($"expert '{name}': unknown modality '{modality}' (expected image, audio or text)");
                if (!PreprocessorRegistry.IsKnown(spec.Profile)) errors.Add($"expert '{name}' {modality}: unknown preprocessing profile '{spec.Profile}' (known: {string.Join(", ", PreprocessorRegistry.Profiles)})");
                if (spec.Clips < 1) errors.Add($"expert '{name}' {modality}: clips must be at least 1");
                if (string.IsNullOrWhiteSpace(spec.Model)) errors.Add($"expert '{name}' {modality}: model file is empty");
            }
        }
        foreach (var (name, set) in m.ProjectorSets)
        {
            if (set.Files.Count == 0) errors.Add($"projector set '{name}' is empty: it needs at least one projector file");
            if (!m.Experts.TryGetValue(set.Source, out var source)) errors.Add($"projector set '{name}': unknown source expert '{set.Source}'");
            else if (source.Dimension != set.InputDimension)
                errors.Add($"projector set '{name}': input dimension {set.InputDimension} does not match its source expert '{set.Source}' ({source.Dimension})");
        }
        if (!m.Experts.ContainsKey(m.Base)) errors.Add($"base expert '{m.Base}' is not declared under experts");
        foreach (var (modality, expert) in m.BaseOverrides)
        {
            if (!ModalityNames.TryParse(modality, out _)) errors.Add($"baseOverrides: unknown modality '{modality}'");
            if (!m.Experts.ContainsKey(expert)) errors.Add($"baseOverrides.{modality}: unknown expert '{expert}'");
        }
        var ids = new HashSet<string>();
        foreach (var bond in m.Bonds)
        {
            if (!ids.Add(bond.Id)) errors.Add($"bond id '{bond.Id}' is used twice");
            if (bond.Kind is not ("displacement" or "combination")) errors.Add($"bond '{bond.Id}': unknown kind '{bond.Kind}' (expected displacement or combination)");
            foreach (var (modality, f) in bond.Factors)
            {
                if (!ModalityNames.TryParse(modality, out _)) errors.Add($"bond '{bond.Id}': unknown modality '{modality}' in factors");
                if (double.IsNaN(f) || f < 0 || f > 1) errors.Add($"bond '{bond.Id}' {modality}: factor {f} is outside [0,1]");
            }
            foreach (var set in bond.Projectors.Concat(bond.ModalityProjectors.Values.SelectMany(v => v)))
                if (!m.ProjectorSets.ContainsKey(set)) errors.Add($"bond '{bond.Id}': unknown projector set '{set}'");
            if (bond.Projectors.Count == 0) errors.Add($"bond '{bond.Id}' names no projector set");
        }
        if (errors.Count > 0) return plans;

        foreach (var modality in Enum.GetValues<Modality>())
            if (PlanModality(m, modality, errors) is { } plan) plans[modality] = plan;
        if (plans.Count == 0 && errors.Count == 0) errors.Add($"space '{m.Name}' serves no modality");
        return plans;
    }

    private static ModalityPlan? PlanModality(SpaceManifest m, Modality modality, List<string> errors)
    {
        var name = modality.ToName();
        var baseExpert = m.BaseOverrides.GetValueOrDefault(name, m.Base);
        if (!m.Experts[baseExpert].Modalities.ContainsKey(name))
        {
            if (m.BaseOverrides.ContainsKey(name)) errors.Add($"baseOverrides.{name}: expert '{baseExpert}' has no {name} encoder");
            return null; // the space does not serve this modality
        }
        var experts = new List<string> { baseExpert };
        var steps = new List<BondStep>();
        var stateSpace = baseExpert;
        var stateDim = m.Experts[baseExpert].Dimension;
        foreach (var bond in m.Bonds)
        {
            if (bond.Kind == "displacement")
            {
                if (bond.Expert is null || !m.Experts.TryGetValue(bond.Expert, out var target))
                {
                    errors.Add($"bond '{bond.Id}': a displacement needs a declared 'expert' (got '{bond.Expert}')");
                    return null;
                }
                var sets = bond.ModalityProjectors.GetValueOrDefault(name, bond.Projectors);
                foreach (var s in sets)
                {
                    var set = m.ProjectorSets[s];
                    if (set.Source != stateSpace)
                        errors.Add($"bond '{bond.Id}' {name}: projector set '{s}' reads '{set.Source}' but the {name} vector is in '{stateSpace}' at this point");
                    if (set.InputDimension != stateDim)
                        errors.Add($"bond '{bond.Id}' {name}: projector set '{s}' takes {set.InputDimension}-d input but the {name} vector is {stateDim}-d");
                    if (set.OutputDimension != target.Dimension)
                        errors.Add($"bond '{bond.Id}' {name}: projector set '{s}' outputs {set.OutputDimension}-d but expert '{bond.Expert}' is {target.Dimension}-d");
                }
                var hasModality = target.Modalities.ContainsKey(name);
                if (hasModality != bond.Factors.ContainsKey(name))
                    errors.Add(hasModality
                        ? $"bond '{bond.Id}' needs a factor for {name} (expert '{bond.Expert}' encodes {name})"
                        : $"bond '{bond.Id}' has a factor for {name} but expert '{bond.Expert}' does not encode {name}");
                if (hasModality) experts.Add(bond.Expert);
                steps.Add(new BondStep(bond.Id, BondKind.Displacement, sets.Select(s => new MixtureInput(s, null)).ToList(),
                    hasModality ? BlendKind.ExpertAtom : BlendKind.None, hasModality ? bond.Expert : null,
                    bond.Factors.GetValueOrDefault(name, 1.0), target.Dimension));
                stateSpace = bond.Expert;
                stateDim = target.Dimension;
            }
            else
            {
                var inputs = new List<MixtureInput>();
                foreach (var s in bond.Projectors)
                {
                    var set = m.ProjectorSets[s];
                    if (set.OutputDimension != stateDim)
                        errors.Add($"bond '{bond.Id}' {name}: projector set '{s}' outputs {set.OutputDimension}-d but the space it combines into is {stateDim}-d here");
                    if (m.Experts[set.Source].Modalities.ContainsKey(name)) inputs.Add(new MixtureInput(s, set.Source));
                }
                if ((inputs.Count > 0) != bond.Factors.ContainsKey(name))
                    errors.Add(inputs.Count > 0
                        ? $"bond '{bond.Id}' needs a factor for {name} (its experts encode {name})"
                        : $"bond '{bond.Id}' has a factor for {name} but none of its experts encodes {name}");
                if (inputs.Count == 0) continue; // other modalities pass through unchanged
                foreach (var i in inputs)
                    if (!experts.Contains(i.AtomExpert!)) experts.Add(i.AtomExpert!);
                steps.Add(new BondStep(bond.Id, BondKind.Combination, inputs, BlendKind.CurrentState, null, bond.Factors[name], stateDim));
            }
        }
        if (stateDim != m.Dimension)
            errors.Add($"{name}: the bonds end in a {stateDim}-d space but the manifest declares dimension {m.Dimension}");
        return new ModalityPlan(modality, baseExpert, steps, experts);
    }

    /// <summary>Every file the manifest references, relative to the model root, sorted and distinct.</summary>
    public static IReadOnlyList<string> ReferencedFiles(SpaceManifest m) =>
        m.Experts.Values.SelectMany(e => e.Modalities.Values.SelectMany(s => s.Tokenizer.Prepend(s.Model)))
            .Concat(m.ProjectorSets.Values.SelectMany(s => s.Files))
            .Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();

    /// <summary>
    /// <c>sha256:</c> over the canonical manifest and every covered file's digest in path order.
    /// External weight files join the list only where a model has them, so a version of inline
    /// models is what it always was.
    /// </summary>
    private static string Digest(SpaceManifest m, SpaceFiles files)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(System.Text.Encoding.UTF8.GetBytes("freebind-space/1\n" + m.ToCanonicalJson() + "\n"));
        foreach (var (file, digest) in files.Digests)
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(file + "\n" + digest + "\n"));
        return "sha256:" + Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>SHA-256 of a file (lower-case hex), cached in this process while the file is unchanged.</summary>
    public static string FileDigest(string path) => FileDigestCache.InProcess.Digest(path);
}
