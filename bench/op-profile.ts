// Time per native function, for finding where a workload spends its time: wraps every function of a loaded
// native library with a timer (CPU ops are synchronous, so wall time per call is the op's time). Benchmarks
// opt in with `--profile`; nothing in src/ uses it.
import type { NativeLibrary } from '../src/runtime/native.js';

export interface OpProfile {
  report(top?: number): string;
  reset(): void;
}

export function profileNativeCalls(lib: NativeLibrary): OpProfile {
  const stats = new Map<string, { calls: number; ms: number }>();
  const fns = lib.fns as unknown as Record<string, (...a: unknown[]) => unknown>;
  for (const [name, fn] of Object.entries(fns)) {
    if (typeof fn !== 'function') continue;
    fns[name] = (...a: unknown[]) => {
      const t0 = performance.now();
      try { return fn(...a); } finally {
        const s = stats.get(name) ?? { calls: 0, ms: 0 };
        s.calls++;
        s.ms += performance.now() - t0;
        stats.set(name, s);
      }
    };
  }
  return {
    reset: () => stats.clear(),
    report: (top = 15) => {
      const total = [...stats.values()].reduce((n, s) => n + s.ms, 0);
      return [...stats.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, top)
        .map(([n, s]) => `${n.padEnd(28)} ${String(s.calls).padStart(7)} calls ${(s.ms / 1000).toFixed(2).padStart(8)} s ${(100 * s.ms / total).toFixed(1).padStart(5)}%`)
        .join('\n');
    },
  };
}
