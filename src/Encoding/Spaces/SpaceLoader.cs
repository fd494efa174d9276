using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using FreeBind.Encoding.Onnx;
using FreeBind.Encoding.Preprocessing;

namespace FreeBind.Encoding.Spaces;

/// <summary>Loads a manifest, applies factor choices, validates it against its files, and versions it.</summary>
public static class SpaceLoader
{
    private static readonly ConcurrentDictionary<(string Path, long Length, DateTime Modified), string> FileDigests = new();

    /// <summary>Loads and validates <paramref name="manifestPath"/> with files under <paramref name="modelRoot"/>.</summary>
    public static SpaceDefinition Load(string manifestPath, string modelRoot, FactorSelection? factors = null, bool checkFiles = true)
    {
        string json;
        try
        {
            json = File.ReadAllText(manifestPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SpaceValidationException([$"cannot read manifest '{manifestPath}': {e.Message}"]);
        }
        return Build(SpaceManifest.Parse(json, manifestPath), modelRoot, factors, checkFiles);
    }

    public static SpaceDefinition Build(SpaceManifest manifest, string modelRoot, FactorSelection? factors = null, bool checkFiles = true)
    {
        var effective = manifest.Clone();
        var errors = new List<string>();
        ApplyFactors(effective, factors ?? FactorSelection.None, errors);
        if (errors.Count > 0) throw new SpaceValidationException(errors);
        var plans = Validate(effective, errors);
        var root = Path.GetFullPath(modelRoot);
        if (checkFiles && errors.Count == 0) CheckFiles(effective, root, errors);
        if (errors.Count > 0) throw new SpaceValidationException(errors);
        return new SpaceDefinition(effective, root, checkFiles ? Digest(effective, root) : "sha256:" + new string('0', 64), plans);
    }

    private static void ApplyFactors(SpaceManifest m, FactorSelection selection, List<string> errors)
    {
        if (selection.Preset is { } preset)
        {
            if (!m.Presets.TryGetValue(preset, out var byBond))
            {
                errors.Add($"space '{m.Name}' has no preset '{preset}' (presets: {(m.Presets.Count == 0 ? "none" : string.Join(", ", m.Presets.Keys))})");
                return;
            }
            foreach (var (bondId, factors) in byBond)
                foreach (var (modality, f) in factors)
                    Set(m, new FactorOverride(bondId, modality, f), errors);
        }
        foreach (var o in selection.Overrides) Set(m, o, errors);
    }

    private static void Set(SpaceManifest m, FactorOverride o, List<string> errors)
    {
        BondSpec? bond = o.Bond is null
            ? m.Bonds.LastOrDefault(b => b.Factors.ContainsKey(o.Modality))
            : m.Bonds.FirstOrDefault(b => b.Id == o.Bond);
        if (bond is null)
        {
            errors.Add(o.Bond is null
                ? $"no bond of space '{m.Name}' blends modality '{o.Modality}', so it has no factor to set"
                : $"space '{m.Name}' has no bond '{o.Bond}' (bonds: {string.Join(", ", m.Bonds.Select(b => b.Id))})");
            return;
        }
        if (!bond.Factors.ContainsKey(o.Modality))
        {
            errors.Add($"bond '{bond.Id}' does not blend modality '{o.Modality}' (it has factors for {string.Join(", ", bond.Factors.Keys)})");
            return;
        }
        bond.Factors[o.Modality] = o.Factor;
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

    private static void CheckFiles(SpaceManifest m, string root, List<string> errors)
    {
        foreach (var file in ReferencedFiles(m))
        {
            var path = Path.Combine(root, file);
            if (!File.Exists(path)) errors.Add($"missing file '{file}' (looked for {path})");
        }
        if (errors.Count > 0) return;
        foreach (var (name, set) in m.ProjectorSets)
            foreach (var file in set.Files)
                CheckSignature(Path.Combine(root, file), $"projector set '{name}' file '{file}'", set.InputDimension, set.OutputDimension, errors);
        foreach (var (name, expert) in m.Experts)
            foreach (var (modality, spec) in expert.Modalities)
                CheckSignature(Path.Combine(root, spec.Model), $"expert '{name}' {modality} model '{spec.Model}'", null, expert.Dimension, errors);
    }

    private static void CheckSignature(string path, string what, int? inputDim, int outputDim, List<string> errors)
    {
        OnnxGraph graph;
        try
        {
            graph = OnnxGraph.LoadSignature(path);
        }
        catch (InvalidDataException e)
        {
            errors.Add($"{what}: {e.Message}");
            return;
        }
        var inputs = graph.RealInputs.ToList();
        if (inputDim is { } id)
        {
            if (inputs.Count != 1) errors.Add($"{what}: a projector takes one input, the file has {inputs.Count}");
            else if (inputs[0].Dims.Length != 2 || inputs[0].Dims[1] != id)
                errors.Add($"{what}: input shape [{Dims(inputs[0].Dims)}] disagrees with the manifest's input dimension {id} (expected [batch,{id}])");
        }
        if (graph.Outputs.Count == 0) errors.Add($"{what}: the model has no output");
        else if (graph.Outputs[0].Dims is { Length: > 0 } dims && dims[^1] > 0 && dims[^1] != outputDim)
            errors.Add($"{what}: output shape [{Dims(dims)}] disagrees with the manifest's dimension {outputDim}");
    }

    private static string Dims(long[] dims) => string.Join(',', dims.Select(d => d < 0 ? "?" : d.ToString(System.Globalization.CultureInfo.InvariantCulture)));

    private static string Digest(SpaceManifest m, string root)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(System.Text.Encoding.UTF8.GetBytes("freebind-space/1\n" + m.ToCanonicalJson() + "\n"));
        foreach (var file in ReferencedFiles(m))
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(file + "\n" + FileDigest(Path.Combine(root, file)) + "\n"));
        return "sha256:" + Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>SHA-256 of a file, cached by path, size and modification time.</summary>
    public static string FileDigest(string path)
    {
        var info = new FileInfo(path);
        return FileDigests.GetOrAdd((info.FullName, info.Length, info.LastWriteTimeUtc), _ =>
        {
            using var stream = File.OpenRead(path);
            return Convert.ToHexStringLower(SHA256.HashData(stream));
        });
    }
}
