// TorchGenerator against torch: every case of the rng fixture set (bit for bit), plus the engine's and the
// sampler's documented behaviour (mt19937 reference value, uint64 seeds, the scalar path's cache, chunking).
import t from 'tap';
import { TorchGenerator, fmaf } from '../../src/runtime/random.js';
import { compareTensors, describeComparison, loadManifest, openGoldens } from '../helpers/goldens.js';

const RNG_SET = 'rng';

t.test('every rng fixture case matches torch.randn bit for bit', async (t) => {
  const manifest = loadManifest(RNG_SET);
  const cases = manifest.cases.filter((c) => c.kind === 'rng');
  t.ok(cases.length > 0, 'the set has rng cases');
  for (const c of cases) {
    const call = c.call as { generator: string; seed: number | string; shape: number[]; dtype: string };
    t.equal(call.generator, 'cpu');
    t.equal(call.dtype, 'float32');
    const golden = openGoldens(RNG_SET, c.file);
    const out = c.outputs[0]!;
    const ref = golden.readFloat32(out.name);
    golden.close();
    // Seeds above 2^53 would not survive JSON as numbers; BigInt(string) keeps them exact if written as strings.
    const gen = new TorchGenerator(BigInt(call.seed));
    const start = performance.now();
    const ours = gen.randn(call.shape);
    const ms = performance.now() - start;
    const tol = { atol: c.tolerance.atol ?? 0, rtol: c.tolerance.rtol ?? 0 };
    const cmp = compareTensors(ours, ref, tol);
    const a = new Uint32Array(ours.buffer);
    const b = new Uint32Array(ref.buffer);
    let differingBits = 0;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) differingBits++;
    t.comment(`${describeComparison(c.id, cmp, tol)}; ${differingBits} of ${ref.length} differ in any bit; ${ms.toFixed(1)} ms`);
    t.ok(cmp.pass, `${c.id} within tolerance`);
    t.equal(differingBits, 0, `${c.id} bit-exact`);
  }
});

t.test('the engine is the reference mt19937: 10000th draw for seed 5489 is 4123659995', async (t) => {
  // The C++ standard fixes this value for std::mt19937 default-seeded ([rand.predef]).
  const g = new TorchGenerator(5489);
  let v = 0;
  for (let i = 0; i < 10000; i++) v = g.nextUint32();
  t.equal(v, 4123659995);
});

t.test('uint64 seeds: only the low 32 bits seed the engine, the full seed is kept', async (t) => {
  const big = new TorchGenerator(4294967301n);
  const small = new TorchGenerator(5);
  t.same(Array.from(big.randn([40])), Array.from(small.randn([40])));
  t.equal(big.initialSeed(), 4294967301n);
  t.equal(new TorchGenerator(-1).initialSeed(), 2n ** 64n - 1n, 'negative seeds wrap like uint64');
  t.equal(new TorchGenerator().initialSeed(), 67280421310721n, "torch.Generator()'s default seed");
});

t.test('state carries across calls as in torch', async (t) => {
  t.test('the scalar path caches the second Box-Muller value', async (t) => {
    const pair = new TorchGenerator(7).randn([2]);
    const g = new TorchGenerator(7);
    t.equal(g.randn([1])[0], pair[0]);
    t.equal(g.randn([1])[0], pair[1], 'second call returns the cached sine value');
  });
  t.test('the vectorised path neither uses nor clears that cache', async (t) => {
    const pair = new TorchGenerator(7).randn([2]);
    const g = new TorchGenerator(7);
    g.randn([1]);
    g.randn([16]);
    t.equal(g.randn([1])[0], pair[1]);
  });
  t.test('manualSeed drops the cache', async (t) => {
    const g = new TorchGenerator(7);
    const first = g.randn([1])[0];
    g.manualSeed(7);
    t.equal(g.randn([1])[0], first);
  });
  t.test('whole blocks of 16 chain: two randn([16]) equal one randn([32])', async (t) => {
    const g = new TorchGenerator(11);
    const a = [...g.randn([16]), ...g.randn([16])];
    t.same(a, Array.from(new TorchGenerator(11).randn([32])));
  });
  t.test('a ragged size redraws its last 16 (size 33 consumes 49 uniforms)', async (t) => {
    const g = new TorchGenerator(3);
    g.randn([33]);
    const h = new TorchGenerator(3);
    for (let i = 0; i < 49; i++) h.nextUint32();
    t.same(Array.from(g.randn([16])), Array.from(h.randn([16])));
  });
});

t.test('the portable (non-AVX2) math stays within float32 rounding of the AVX2 path', async (t) => {
  const a = new TorchGenerator(1234, 'avx2').randn([4096]);
  const b = new TorchGenerator(1234, 'scalar').randn([4096]);
  const cmp = compareTensors(b, a, { atol: 1e-5, rtol: 1e-5 });
  t.comment(describeComparison('scalar vs avx2', cmp, { atol: 1e-5, rtol: 1e-5 }));
  t.ok(cmp.pass);
});

/** Exact float32 rounding of a*b+c from dyadic big integers: the reference fmaf is checked against. */
function exactFmaf(a: number, b: number, c: number): number {
  const dy = (x: number): [bigint, number] => { let e = 0; while (!Number.isInteger(x)) { x *= 2; e--; } return [BigInt(x), e]; };
  const [ma, ea] = dy(a);
  const [mb, eb] = dy(b);
  const [mc, ec] = dy(c);
  const e = Math.min(ea + eb, ec) - 30; // fine enough for the 24-bit neighbours of any non-zero result
  const v = ma * mb * 2n ** BigInt(ea + eb - e) + mc * 2n ** BigInt(ec - e); // exact value = v * 2^e
  if (v === 0n) return 0;
  const exact = (x: number): bigint => { const [m, ex] = dy(x); return m * 2n ** BigInt(ex - e); };
  const approx = Math.fround(Number(v) * 2 ** e);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const candidates = [-1, 0, 1].map((k) => { f[0] = approx; u[0] = u[0]! + k; return f[0]!; }).filter(Number.isFinite);
  let best = candidates[0]!;
  for (const cand of candidates.slice(1)) {
    const d0 = exact(best) - v;
    const d1 = exact(cand) - v;
    const a0 = d0 < 0n ? -d0 : d0;
    const a1 = d1 < 0n ? -d1 : d1;
    f[0] = cand;
    if (a1 < a0 || (a1 === a0 && (u[0]! & 1) === 0)) best = cand;
  }
  return best;
}

t.test('fmaf rounds once, including exact ties decided by a tiny addend', async (t) => {
  const one = 1 + 2 ** -12; // one * one = 1 + 2^-11 + 2^-24: exactly half an ulp above a float
  t.equal(fmaf(one, one, 0), 1 + 2 ** -11, 'tie to even');
  t.equal(fmaf(one, one, 2 ** -60), 1 + 2 ** -11 + 2 ** -23, 'a tiny positive addend rounds up');
  t.equal(fmaf(one, one, -(2 ** -60)), 1 + 2 ** -11, 'a tiny negative addend rounds down');
  t.equal(Math.fround(Math.fround(one * one) + 2 ** -60), 1 + 2 ** -11, 'separate multiply and add would lose it');
  let seed = 12345;
  const rnd = (): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed / 2 ** 32; };
  const randFloat = (): number => Math.fround((rnd() - 0.5) * 2 ** Math.floor(rnd() * 20 - 10));
  let bad = 0;
  for (let i = 0; i < 20000; i++) {
    const a = randFloat();
    const b = randFloat();
    // c near -a*b provokes cancellation; half the time c is unrelated
    const c = i % 2 ? Math.fround(-a * b * (1 + (rnd() - 0.5) * 2 ** -20)) : randFloat();
    if (fmaf(a, b, c) !== exactFmaf(a, b, c)) bad++;
  }
  t.equal(bad, 0, '20000 random triples agree with exact rounding');
});
