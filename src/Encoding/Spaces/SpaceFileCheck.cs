using System.Globalization;
using FreeBind.Encoding.Execution;
using FreeBind.Encoding.Onnx;

namespace FreeBind.Encoding.Spaces;

/// <summary>
/// Checks a manifest's files under a model root and collects their digests: which files exist,
/// each ONNX file's signature against the manifest, external weight files present and whole,
/// symbolic encoder widths measured by a probe, and known digests honoured. A fusion-only load
/// reads the projector files only.
/// </summary>
internal static class SpaceFileCheck
{
    public static SpaceFiles Run(SpaceManifest m, string root, SpaceLoadOptions options)
    {
        var cache = options.Digests ?? FileDigestCache.InProcess;
        var known = options.KnownFiles;
        var all = SpaceLoader.ReferencedFiles(m);
        var errors = new List<string>();
        foreach (var file in all)
            if (Path.IsPathRooted(file) || !Inside(root, Path.GetFullPath(Path.Combine(root, file))))
                errors.Add($"file path '{file}' leaves the model root: manifest paths are relative to it");
        if (errors.Count > 0) throw new SpaceValidationException(errors, m.Name);
        if (!Directory.Exists(root))
            throw new SpaceChoiceException(SpaceChoice.Models, root,
                $"model folder '{root}' does not exist: give the folder of your ONNX exports (setting Spaces:ModelRoot, or --models; docs/export.md)");

        var projectorFiles = m.ProjectorSets.Values.SelectMany(s => s.Files).ToHashSet(StringComparer.Ordinal);
        var fuseOnly = options.Use == SpaceUse.Fuse;
        // A fusion-only load reads the projectors, and any other file only if no digest is known for it.
        var toRead = all.Where(f => !fuseOnly || projectorFiles.Contains(f) || known?.Digests.ContainsKey(f) != true).ToList();
        var missing = toRead.Where(f => !File.Exists(Path.Combine(root, f))).ToList();
        if (missing.Count >= 2 && missing.Count == toRead.Count)
            throw new SpaceChoiceException(SpaceChoice.Models, root,
                $"model folder '{root}' holds none of the {missing.Count} files space '{m.Name}' needs (the first is '{missing[0]}'): give the folder of your ONNX exports (setting Spaces:ModelRoot, or --models; docs/export.md)");
        foreach (var file in missing.Where(f => !fuseOnly || projectorFiles.Contains(f)))
            errors.Add($"missing file '{file}' (looked for {Path.Combine(root, file)})");
        if (fuseOnly && missing.Where(f => !projectorFiles.Contains(f)).ToList() is { Count: > 0 } undigested)
            errors.Add($"{undigested.Count} encoder and tokenizer file{(undigested.Count == 1 ? " is" : "s are")} not under the model root and no digest was given for {(undigested.Count == 1 ? "it" : "them")} " +
                $"(the first is '{undigested[0]}'): fusion reads no encoder, but needs every file's digest to name the version; " +
                "take them from the stored version, or give `freebind fuse --digests FILE` what `freebind spaces show --json` prints where the encoders are");
        if (errors.Count > 0) throw new SpaceValidationException(errors, m.Name);

        var reading = toRead.ToHashSet(StringComparer.Ordinal);
        var external = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        foreach (var (name, set) in m.ProjectorSets)
            foreach (var file in set.Files)
                if (reading.Contains(file))
                    CheckOnnx(root, file, $"projector set '{name}' file '{file}'", set.InputDimension, set.OutputDimension, null, external, errors);
        foreach (var (name, expert) in m.Experts)
            foreach (var (modality, spec) in expert.Modalities)
                if (reading.Contains(spec.Model) && !external.ContainsKey(spec.Model))
                    CheckOnnx(root, spec.Model, $"expert '{name}' {modality} model '{spec.Model}'", null, expert.Dimension, options.Probe, external, errors);
        if (errors.Count > 0) throw new SpaceValidationException(errors, m.Name);

        var digests = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var file in toRead.Concat(external.Values.SelectMany(d => d)))
            digests[file] = cache.Digest(Path.Combine(root, file));
        foreach (var file in all.Where(f => !reading.Contains(f)))
        {
            digests[file] = known!.Digests[file];
            if (known.ExternalData.TryGetValue(file, out var data))
            {
                external[file] = data;
                foreach (var d in data) digests[d] = known.Digests[d];
            }
        }
        if (known is not null)
            foreach (var (file, digest) in digests)
                if (known.Digests.TryGetValue(file, out var expected) && expected != digest)
                    errors.Add($"file '{file}' is not the one the version was built with (SHA-256 {digest[..12]}… here, {expected[..12]}… expected)");
        if (errors.Count > 0) throw new SpaceValidationException(errors, m.Name);
        return new SpaceFiles(digests, external.Where(kv => kv.Value.Count > 0).ToDictionary());
    }

    private static void CheckOnnx(string root, string file, string what, int? inputDim, int outputDim, SessionFactory? probe,
        Dictionary<string, IReadOnlyList<string>> external, List<string> errors)
    {
        var path = Path.Combine(root, file);
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
        var before = errors.Count;
        external[file] = CheckExternalData(root, file, what, graph, errors);
        var inputs = graph.RealInputs.ToList();
        if (inputDim is { } id)
        {
            if (inputs.Count != 1) errors.Add($"{what}: a projector takes one input, the file has {inputs.Count}");
            else if (inputs[0].Dims.Length != 2 || inputs[0].Dims[1] != id)
                errors.Add($"{what}: input shape [{Dims(inputs[0].Dims)}] disagrees with the manifest's input dimension {id} (expected [batch,{id}])");
        }
        if (graph.Outputs.Count == 0)
        {
            errors.Add($"{what}: the model has no output");
            return;
        }
        var dims = graph.Outputs[0].Dims;
        if (dims is { Length: > 0 } && dims[^1] > 0)
        {
            if (dims[^1] != outputDim) errors.Add($"{what}: output shape [{Dims(dims)}] disagrees with the manifest's dimension {outputDim}");
        }
        else if (probe is not null && errors.Count == before)
        {
            // The file does not state its width (a symbolic last dimension): run it once to see.
            try
            {
                var width = OnnxModel.ProbeOutputWidth(probe, path, what);
                if (width != outputDim)
                    errors.Add($"{what}: output width {width} (measured by running the model once; the file leaves it symbolic) disagrees with the manifest's dimension {outputDim}");
            }
            catch (Exception e) when (e is Microsoft.ML.OnnxRuntime.OnnxRuntimeException or InvalidOperationException or ArgumentException)
            {
                errors.Add($"{what}: the file leaves its output width symbolic and running it once to measure it failed ({e.Message.Split('\n')[0]}); export it with a concrete output width (docs/export.md)");
            }
        }
    }

    /// <summary>External weight files of a model: present, inside the model's folder, and long enough for every tensor in them.</summary>
    private static List<string> CheckExternalData(string root, string file, string what, OnnxGraph graph, List<string> errors)
    {
        var files = new List<string>();
        if (graph.ExternalData.Count == 0) return files;
        var folder = Path.GetDirectoryName(Path.GetFullPath(Path.Combine(root, file)))!;
        foreach (var group in graph.ExternalData.GroupBy(e => e.Location, StringComparer.Ordinal))
        {
            var location = group.Key;
            var path = Path.GetFullPath(Path.Combine(folder, location));
            if (Path.IsPathRooted(location) || !Inside(folder, path))
            {
                errors.Add($"{what}: its external weights '{location}' lie outside the model's folder; they must sit beside the .onnx file");
                continue;
            }
            var needed = group.Max(e => e.Offset + e.Length);
            var length = Length(path);
            if (length < 0)
            {
                errors.Add($"{what}: its weights file '{location}' is missing (looked for {path}); a model over 2 GB is exported as .onnx + .onnx.data, copy both");
                continue;
            }
            if (length < needed)
            {
                errors.Add($"{what}: its weights file '{location}' is truncated: {length.ToString("N0", CultureInfo.InvariantCulture)} bytes, its tensors need {needed.ToString("N0", CultureInfo.InvariantCulture)}; copy it again or re-export");
                continue;
            }
            files.Add(Path.GetRelativePath(root, path).Replace(Path.DirectorySeparatorChar, '/'));
        }
        return files;
    }

    // The length of the file a path (or symlink) leads to, or -1 when there is none.
    private static long Length(string path)
    {
        try
        {
            using var handle = File.OpenHandle(path);
            return RandomAccess.GetLength(handle);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return -1;
        }
    }

    private static bool Inside(string folder, string path)
    {
        var prefix = folder.EndsWith(Path.DirectorySeparatorChar) ? folder : folder + Path.DirectorySeparatorChar;
        return path.StartsWith(prefix, StringComparison.Ordinal);
    }

    private static string Dims(long[] dims) => string.Join(',', dims.Select(d => d < 0 ? "?" : d.ToString(CultureInfo.InvariantCulture)));
}
