using System.Globalization;
using FreeBind.Benchmarks;

// Benchmarks live apart from tests: they report figures and ratios measured in one run.
const string Usage = """
    usage: dotnet run -c Release --project bench/FreeBind.Benchmarks -- fusion --models DIR [options]

      --models DIR        folder with IB_PP_G_Proj/ and IB_PP_M_Proj/ (upstream layout SET/MODE/best.onnx)
      --batches LIST      batch sizes of the sweep, default 1,8,32,64,128,256,512,1024
      --seconds S         timed seconds per case and batch size (over all rounds), default 1.5
      --investigate-batch N   batch size of the investigation, default 256
      --python PATH       interpreter for the PyTorch baseline, default /usr/bin/python3
      --provider P        ONNX Runtime execution provider for (a) and (b): cpu (default), cuda, tensorrt, auto
      --no-torch          skip (c)
      --no-investigate    skip the investigation (spin tails, experiments, profile)
      --docs PATH         markdown file to update (default: docs/benchmarks.md of the repository)
      --no-docs           print only
    """;

if (args.Length > 0 && args[0] == "preprocess") return PreprocessBenchmark.RunCommand(args[1..]);
if (args.Length > 0 && args[0] == "ingestion") return IngestionBenchmark.RunCommand(args[1..]);
if (args.Length > 0 && args[0] == "index-build") return IndexBuildBenchmark.RunCommand(args[1..]);
if (args.Length > 0 && args[0] == "space-load") return SpaceLoadBenchmark.RunCommand(args[1..]);
if (args.Length > 0 && args[0] == "refusion") return RefusionBenchmark.RunCommand(args[1..]);
if (args.Length == 0 || args[0] != "fusion")
{
    Console.Error.WriteLine(Usage);
    return 2;
}

string? models = null, docs = null;
var python = "/usr/bin/python3";
var batches = new[] { 1, 8, 32, 64, 128, 256, 512, 1024 };
var investigateBatch = 256;
var seconds = 1.5;
bool torch = true, investigate = true, writeDocs = true;
var provider = "cpu";
for (var i = 1; i < args.Length; i++)
{
    string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
    switch (args[i])
    {
        case "--models": models = Value(); break;
        case "--batches": batches = [.. Value().Split(',').Select(b => int.Parse(b, CultureInfo.InvariantCulture))]; break;
        case "--investigate-batch": investigateBatch = int.Parse(Value(), CultureInfo.InvariantCulture); break;
        case "--seconds": seconds = double.Parse(Value(), CultureInfo.InvariantCulture); break;
        case "--python": python = Value(); break;
        case "--provider": provider = Value(); break;
        case "--no-torch": torch = false; break;
        case "--no-investigate": investigate = false; break;
        case "--docs": docs = Value(); break;
        case "--no-docs": writeDocs = false; break;
        default:
            Console.Error.WriteLine($"unknown option {args[i]}\n{Usage}");
            return 2;
    }
}
if (models is null)
{
    Console.Error.WriteLine(Usage);
    return 2;
}

var root = RepositoryRoot();
var options = new FusionBenchmarkOptions(Path.GetFullPath(models), batches, seconds, python,
    Path.Combine(root ?? ".", "tools", "reference", "bench_torch.py"), torch, investigate, investigateBatch,
    "dotnet run -c Release --project bench/FreeBind.Benchmarks -- " + string.Join(' ', args), provider);
var report = await FusionBenchmark.RunAsync(options);
Console.WriteLine(report);
if (writeDocs)
{
    docs ??= Path.Combine(root ?? throw new InvalidOperationException("repository root not found; pass --docs PATH or --no-docs"), "docs", "benchmarks.md");
    BenchmarkDocs.WriteSection(docs, "fusion", report);
    Console.Error.WriteLine($"updated {docs}");
}
return 0;

static string? RepositoryRoot()
{
    for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
        if (File.Exists(Path.Combine(dir.FullName, "FreeBind.Pipeline.sln"))) return dir.FullName;
    return null;
}
