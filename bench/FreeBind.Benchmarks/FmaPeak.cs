using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace FreeBind.Benchmarks;

/// <summary>Measured FMA throughput of this machine: one kernel per vector width, on 1 core and on all cores.</summary>
internal sealed record PeakResult(string Kernel, int Threads, double GflopsPerSecond, int Lanes);

/// <summary>
/// Dependent-chain-free FMA loops: enough independent accumulators to cover FMA latency × FMA
/// pipes (4 cycles × 2 pipes on current x86 needs ≥ 8), no memory traffic, so the figure is the
/// arithmetic peak the GEMMs are measured against.
/// </summary>
internal static class FmaPeak
{
    private const int InnerIterations = 1 << 16;

    public static IReadOnlyList<PeakResult> Measure(double seconds)
    {
        var results = new List<PeakResult>();
        var cores = Environment.ProcessorCount;
        if (Fma.IsSupported)
        {
            results.Add(Run("Vector256 FMA (AVX2)", 1, Kernel256, 8, 12, seconds));
            results.Add(Run("Vector256 FMA (AVX2)", cores, Kernel256, 8, 12, seconds));
        }
        if (Avx512F.IsSupported)
        {
            results.Add(Run("Vector512 FMA (AVX-512)", 1, Kernel512, 16, 16, seconds));
            results.Add(Run("Vector512 FMA (AVX-512)", cores, Kernel512, 16, 16, seconds));
        }
        return results;
    }

    private static PeakResult Run(string name, int threads, Func<int, float> kernel, int lanes, int accumulators, double seconds)
    {
        kernel(1000); // JIT the optimised body before timing
        var counts = new long[threads];
        var sink = new float[threads];
        var stop = 0;
        using var start = new Barrier(threads + 1);
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            long n = 0;
            var s = 0f;
            while (Volatile.Read(ref stop) == 0)
            {
                s += kernel(InnerIterations);
                n++;
            }
            counts[t] = n;
            sink[t] = s;
        }) { IsBackground = true }).ToList();
        foreach (var w in workers) w.Start();
        start.SignalAndWait();
        var clock = Stopwatch.StartNew();
        Thread.Sleep(TimeSpan.FromSeconds(seconds));
        Volatile.Write(ref stop, 1);
        foreach (var w in workers) w.Join();
        var elapsed = clock.Elapsed.TotalSeconds;
        if (sink.Any(float.IsNaN)) throw new InvalidOperationException("FMA kernel diverged");
        var flops = counts.Sum() * (double)InnerIterations * accumulators * lanes * 2;
        return new PeakResult(name, threads, flops / elapsed / 1e9, lanes);
    }

    // 12 independent ymm accumulators, 12 FMAs (8 lanes × 2 flops) per iteration.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Kernel256(int iterations)
    {
        var a = Vector256.Create(0.999999f);
        var b = Vector256.Create(1e-6f);
        Vector256<float> c0 = Vector256.Create(0.1f), c1 = Vector256.Create(0.2f), c2 = Vector256.Create(0.3f), c3 = Vector256.Create(0.4f);
        Vector256<float> c4 = Vector256.Create(0.5f), c5 = Vector256.Create(0.6f), c6 = Vector256.Create(0.7f), c7 = Vector256.Create(0.8f);
        Vector256<float> c8 = Vector256.Create(0.9f), c9 = Vector256.Create(1.0f), c10 = Vector256.Create(1.1f), c11 = Vector256.Create(1.2f);
        for (var i = 0; i < iterations; i++)
        {
            c0 = Fma.MultiplyAdd(c0, a, b); c1 = Fma.MultiplyAdd(c1, a, b); c2 = Fma.MultiplyAdd(c2, a, b);
            c3 = Fma.MultiplyAdd(c3, a, b); c4 = Fma.MultiplyAdd(c4, a, b); c5 = Fma.MultiplyAdd(c5, a, b);
            c6 = Fma.MultiplyAdd(c6, a, b); c7 = Fma.MultiplyAdd(c7, a, b); c8 = Fma.MultiplyAdd(c8, a, b);
            c9 = Fma.MultiplyAdd(c9, a, b); c10 = Fma.MultiplyAdd(c10, a, b); c11 = Fma.MultiplyAdd(c11, a, b);
        }
        var sum = ((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7)) + ((c8 + c9) + (c10 + c11));
        return Vector256.Sum(sum);
    }

    // 16 independent zmm accumulators, 16 FMAs (16 lanes × 2 flops) per iteration.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Kernel512(int iterations)
    {
        var a = Vector512.Create(0.999999f);
        var b = Vector512.Create(1e-6f);
        Vector512<float> c0 = Vector512.Create(0.1f), c1 = Vector512.Create(0.2f), c2 = Vector512.Create(0.3f), c3 = Vector512.Create(0.4f);
        Vector512<float> c4 = Vector512.Create(0.5f), c5 = Vector512.Create(0.6f), c6 = Vector512.Create(0.7f), c7 = Vector512.Create(0.8f);
        Vector512<float> c8 = Vector512.Create(0.9f), c9 = Vector512.Create(1.0f), c10 = Vector512.Create(1.1f), c11 = Vector512.Create(1.2f);
        Vector512<float> c12 = Vector512.Create(1.3f), c13 = Vector512.Create(1.4f), c14 = Vector512.Create(1.5f), c15 = Vector512.Create(1.6f);
        for (var i = 0; i < iterations; i++)
        {
            c0 = Avx512F.FusedMultiplyAdd(c0, a, b); c1 = Avx512F.FusedMultiplyAdd(c1, a, b);
            c2 = Avx512F.FusedMultiplyAdd(c2, a, b); c3 = Avx512F.FusedMultiplyAdd(c3, a, b);
            c4 = Avx512F.FusedMultiplyAdd(c4, a, b); c5 = Avx512F.FusedMultiplyAdd(c5, a, b);
            c6 = Avx512F.FusedMultiplyAdd(c6, a, b); c7 = Avx512F.FusedMultiplyAdd(c7, a, b);
            c8 = Avx512F.FusedMultiplyAdd(c8, a, b); c9 = Avx512F.FusedMultiplyAdd(c9, a, b);
            c10 = Avx512F.FusedMultiplyAdd(c10, a, b); c11 = Avx512F.FusedMultiplyAdd(c11, a, b);
            c12 = Avx512F.FusedMultiplyAdd(c12, a, b); c13 = Avx512F.FusedMultiplyAdd(c13, a, b);
            c14 = Avx512F.FusedMultiplyAdd(c14, a, b); c15 = Avx512F.FusedMultiplyAdd(c15, a, b);
        }
        var sum = (((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7))) + (((c8 + c9) + (c10 + c11)) + ((c12 + c13) + (c14 + c15)));
        return Vector512.Sum(sum);
    }
}
