// sgld_attention and sgld_attention_merge on the CPU backend against a float64 reference written here:
// cross-attention lengths, odd head sizes, strided layouts ([B,S,H,D], [B,H,S,D], a fused QKV buffer), bias with
// broadcast strides, key-padding masks, fully masked rows, log-sum-exp, a 4096-token sequence whose workspace
// must not grow with seq^2, threading, and the ring-attention merge.
//
// Tolerance: outputs are convex combinations of V rows (|v| <= 1), so fp32 rounding leaves them within ~1e-6;
// checks allow |out - want| <= 5e-6 and |lse - want| <= 2e-6 * (1 + |want|) (measured: <= 7e-7 and 1.3e-7).
// A wrong key, stride, bias or normalisation moves them by O(0.1).
import t, { type Test } from 'tap';
import { NativeDType, Status, type Ptr } from '../../src/runtime/native.js';
import { NativeHarness, i64, randomFloats } from '../helpers/native-harness.js';

const OUT_TOL = 5e-6;
const LSE_TOL = 2e-6;

/** Where element (b, s, h, d) of a [batch, seq, heads, head_dim] operand lives inside its buffer. */
interface Layout { offset: number; strides: [number, number, number] }

const bshd = (S: number, H: number, D: number, offset = 0): Layout => ({ offset, strides: [S * H * D, H * D, D] });
const bhsd = (S: number, H: number, D: number, offset = 0): Layout => ({ offset, strides: [H * S * D, D, S * D] });
const at = (l: Layout, b: number, s: number, h: number): number => l.offset + b * l.strides[0] + s * l.strides[1] + h * l.strides[2];
/** Buffer length that holds every element a layout addresses. */
const extent = (l: Layout, B: number, S: number, H: number, D: number): number => at(l, B - 1, S - 1, H - 1) + D;

interface Problem {
  B: number; H: number; Sq: number; Skv: number; D: number; scale: number;
  q: Float32Array; qL: Layout; k: Float32Array; kL: Layout; v: Float32Array; vL: Layout;
  bias?: { data: Float32Array; strides: [number, number, number, number] };
  keyBias?: { data: Float32Array; sb: number };
}

/** Float64 attention: out as [B, Sq, H, D] contiguous, lse as [B, H, Sq]. */
function reference(p: Problem): { out: Float64Array; lse: Float64Array } {
  const { B, H, Sq, Skv, D } = p;
  const out = new Float64Array(B * Sq * H * D), lse = new Float64Array(B * H * Sq);
  const logits = new Float64Array(Skv);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let i = 0; i < Sq; i++) {
    const qo = at(p.qL, b, i, h);
    let m = -Infinity;
    for (let j = 0; j < Skv; j++) {
      const ko = at(p.kL, b, j, h);
      let s = 0;
      for (let d = 0; d < D; d++) s += p.q[qo + d]! * p.k[ko + d]!;
      s *= p.scale;
      if (p.bias) { const st = p.bias.strides; s += p.bias.data[b * st[0] + h * st[1] + i * st[2] + j * st[3]]!; }
      if (p.keyBias) s += p.keyBias.data[b * p.keyBias.sb + j]!;
      logits[j] = s;
      m = Math.max(m, s);
    }
    const o = ((b * Sq + i) * H + h) * D;
    if (m === -Infinity) { lse[(b * H + h) * Sq + i] = -Infinity; continue; }
    let sum = 0;
    for (let j = 0; j < Skv; j++) {
      const w = Math.exp(logits[j]! - m);
      if (w === 0) continue;
      sum += w;
      const vo = at(p.vL, b, j, h);
      for (let d = 0; d < D; d++) out[o + d] += w * p.v[vo + d]!;
    }
    for (let d = 0; d < D; d++) out[o + d] /= sum;
    lse[(b * H + h) * Sq + i] = m + Math.log(sum);
  }
  return { out, lse };
}

const offsetPtr = (p: Ptr, elements: number): Ptr => p + BigInt(elements * 4);

/** Runs sgld_attention, writing `out` in layout outL (inside a buffer of its extent); returns out as [B,Sq,H,D]. */
function runNative(h: NativeHarness, p: Problem, outL: Layout = bshd(p.Sq, p.H, p.D), withLse = true) {
  const { B, H, Sq, Skv, D } = p;
  const pq = h.upload(p.q), pk = p.k === p.q ? pq : h.upload(p.k), pv = p.v === p.q ? pq : h.upload(p.v);
  const outLen = extent(outL, B, Sq, H, D);
  const pout = h.upload(new Float32Array(outLen).fill(NaN));
  const plse = withLse ? h.upload(new Float32Array(B * H * Sq).fill(NaN)) : null;
  const pbias = p.bias ? h.upload(p.bias.data) : null;
  const pkb = p.keyBias ? h.upload(p.keyBias.data) : null;
  h.check(h.lib.fns.sgld_attention(h.ctx, NativeDType.F32, B, H, Sq, Skv, D,
    offsetPtr(pq, p.qL.offset), i64(...p.qL.strides), offsetPtr(pk, p.kL.offset), i64(...p.kL.strides),
    offsetPtr(pv, p.vL.offset), i64(...p.vL.strides), offsetPtr(pout, outL.offset), i64(...outL.strides),
    plse, p.scale, pbias, p.bias ? i64(...p.bias.strides) : null, pkb, p.keyBias?.sb ?? 0), 'sgld_attention');
  const raw = h.download(pout, outLen);
  const out = new Float32Array(B * Sq * H * D);
  for (let b = 0; b < B; b++) for (let i = 0; i < Sq; i++) for (let hh = 0; hh < H; hh++)
    out.set(raw.subarray(at(outL, b, i, hh), at(outL, b, i, hh) + D), ((b * Sq + i) * H + hh) * D);
  const lse = plse ? h.download(plse, B * H * Sq) : null;
  for (const ptr of new Set([pq, pk, pv, pout])) h.free(ptr);
  for (const ptr of [plse, pbias, pkb]) if (ptr) h.free(ptr);
  return { out, lse };
}

function maxErr(got: ArrayLike<number>, want: ArrayLike<number>, relative = false): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!, w = want[i]!;
    if (w === -Infinity && g === -Infinity) continue;
    const e = Math.abs(g - w) / (relative ? 1 + Math.abs(w) : 1);
    if (Number.isNaN(e)) return NaN;
    worst = Math.max(worst, e);
  }
  return worst;
}

/** A problem with contiguous [B, S, H, D] operands of random values (q, k in [-2, 2], v in [-1, 1]). */
function problem(B: number, H: number, Sq: number, Skv: number, D: number, seed: number): Problem {
  return {
    B, H, Sq, Skv, D, scale: 1 / Math.sqrt(D),
    q: randomFloats(B * Sq * H * D, seed, 2), qL: bshd(Sq, H, D),
    k: randomFloats(B * Skv * H * D, seed + 1, 2), kL: bshd(Skv, H, D),
    v: randomFloats(B * Skv * H * D, seed + 2), vL: bshd(Skv, H, D),
  };
}

function check(t: Test, h: NativeHarness, p: Problem, label: string, outL?: Layout) {
  const got = runNative(h, p, outL);
  const want = reference(p);
  const eo = maxErr(got.out, want.out), el = maxErr(got.lse!, want.lse, true);
  t.ok(eo <= OUT_TOL, `${label}: out error ${eo.toExponential(2)}`);
  t.ok(el <= LSE_TOL, `${label}: lse error ${el.toExponential(2)}`);
  return got;
}

const h1 = new NativeHarness({ threads: 1 });
const h2 = new NativeHarness({ threads: 2 });
t.teardown(() => { h1.close(); h2.close(); });

t.test('matches the fp64 reference for self- and cross-attention lengths and odd head sizes', async (t) => {
  const shapes: [number, number, number, number, number][] = [
    // B, H, Sq, Skv, D
    [2, 3, 37, 37, 24], [1, 2, 5, 300, 64], [2, 1, 200, 7, 7], [1, 2, 97, 129, 33], [1, 1, 1, 1, 1],
    [1, 2, 64, 256, 128], [3, 1, 13, 140, 80],
  ];
  for (const [i, [B, H, Sq, Skv, D]] of shapes.entries())
    check(t, h1, problem(B, H, Sq, Skv, D, 10 + 10 * i), `B${B} H${H} Sq${Sq} Skv${Skv} D${D}`);
});

t.test('online softmax across many key blocks: the Wan shapes, and row maxima that rise in every block', async (t) => {
  // The transformer's shapes at head_dim 64 and 128 (whole 256-key blocks, query tiles with a 6-row tail; text
  // cross-attention of 128 keys), cut to fewer queries and heads so the fp64 reference stays fast.
  for (const [B, H, Sq, Skv, D] of [[1, 2, 150, 1280, 64], [2, 1, 100, 128, 64], [1, 1, 61, 520, 128]] as const)
    check(t, h2, problem(B, H, Sq, Skv, D, 900 + Skv), `B${B} H${H} Sq${Sq} Skv${Skv} D${D}`);
  // Keys scaled up along the sequence: each 256-key block holds larger logits (up to ~30) than the last, so
  // every block moves the running max and rescales the earlier sum and output (by factors down to ~1e-9).
  // (fp32 logits of that size carry ~2e-6 relative rounding, which the reference does not have.)
  const p = problem(1, 2, 40, 777, 32, 950);
  p.scale = 1;
  for (let j = 0; j < p.Skv; j++) for (let i = 0; i < p.H * p.D; i++) p.k[j * p.H * p.D + i]! *= 0.05 + j / p.Skv;
  check(t, h1, p, 'rising maxima, Skv 777');
});

t.test('q/k/v/out strides: [B,H,S,D] operands, a fused QKV buffer, padded rows, mixed output layout', async (t) => {
  const B = 2, H = 3, S = 41, D = 20;
  // [B, H, S, D] for all four.
  const p1 = problem(B, H, S, S, D, 100);
  p1.q = randomFloats(B * H * S * D, 101, 2); p1.qL = bhsd(S, H, D);
  p1.k = randomFloats(B * H * S * D, 102, 2); p1.kL = bhsd(S, H, D);
  p1.v = randomFloats(B * H * S * D, 103); p1.vL = bhsd(S, H, D);
  check(t, h1, p1, '[B,H,S,D] in and out', bhsd(S, H, D));
  // One fused projection output [B, S, 3, H, D]: q, k and v are offsets into the same buffer.
  const fused = randomFloats(B * S * 3 * H * D, 104, 2);
  const fusedLayout = (part: number): Layout => ({ offset: part * H * D, strides: [S * 3 * H * D, 3 * H * D, D] });
  const p2: Problem = { ...problem(B, H, S, S, D, 105), q: fused, k: fused, v: fused, qL: fusedLayout(0), kL: fusedLayout(1), vL: fusedLayout(2) };
  check(t, h1, p2, 'fused QKV in, [B,H,S,D] out', bhsd(S, H, D));
  // Rows padded past head_dim (seq stride > H * D) and an output with its own padding.
  const pad = (Sx: number): Layout => ({ offset: 3, strides: [Sx * (H * D + 5) + 7, H * D + 5, D] });
  const p3 = problem(B, H, S, 53, D, 106);
  p3.q = randomFloats(extent(pad(S), B, S, H, D), 107, 2); p3.qL = pad(S);
  p3.k = randomFloats(extent(pad(53), B, 53, H, D), 108, 2); p3.kL = pad(53);
  p3.v = randomFloats(extent(pad(53), B, 53, H, D), 109); p3.vL = pad(53);
  check(t, h1, p3, 'padded rows in and out', pad(S));
});

t.test('bias is read through four strides, 0 broadcasting (per head, shared, per row, transposed)', async (t) => {
  const B = 2, H = 2, Sq = 19, Skv = 150, D = 16;
  const cases: [string, number, [number, number, number, number]][] = [
    ['full [B,H,Sq,Skv]', B * H * Sq * Skv, [H * Sq * Skv, Sq * Skv, Skv, 1]],
    ['per head [1,H,Sq,Skv]', H * Sq * Skv, [0, Sq * Skv, Skv, 1]],
    ['shared [Sq,Skv]', Sq * Skv, [0, 0, Skv, 1]],
    ['per key [B,1,1,Skv]', B * Skv, [Skv, 0, 0, 1]],
    ['per row [B,H,Sq,1] (shifts lse only)', B * H * Sq, [H * Sq, Sq, 1, 0]],
    ['transposed [B,H,Skv,Sq]', B * H * Sq * Skv, [H * Sq * Skv, Sq * Skv, 1, Sq]],
  ];
  for (const [i, [name, len, strides]] of cases.entries()) {
    const p = problem(B, H, Sq, Skv, D, 200 + 10 * i);
    p.bias = { data: randomFloats(len, 205 + 10 * i, 3), strides };
    check(t, h1, p, name);
  }
});

t.test('key_bias masks padded keys: same result as attending to the unpadded keys only', async (t) => {
  const B = 2, H = 2, Sq = 30, Skv = 170, D = 32, valid = [170, 111], sb = Skv + 3;
  const p = problem(B, H, Sq, Skv, D, 300);
  const kb = new Float32Array(B * sb);
  for (let b = 0; b < B; b++) for (let j = valid[b]!; j < Skv; j++) kb[b * sb + j] = -Infinity;
  p.keyBias = { data: kb, sb };
  const got = check(t, h1, p, 'masked via key_bias');
  // Batch item 1 alone with its first 111 keys, no mask.
  const q1 = p.q.slice(Sq * H * D), k1 = p.k.slice(Skv * H * D, (Skv + 111) * H * D), v1 = p.v.slice(Skv * H * D, (Skv + 111) * H * D);
  const cut: Problem = { B: 1, H, Sq, Skv: 111, D, scale: p.scale, q: q1, qL: bshd(Sq, H, D), k: k1, kL: bshd(111, H, D), v: v1, vL: bshd(111, H, D) };
  const alone = runNative(h1, cut);
  t.ok(maxErr(got.out.subarray(Sq * H * D), alone.out) <= OUT_TOL, 'equals attention over the 111 real keys');
});

t.test('rows whose keys are all masked give out = 0 and lse = -inf; other rows are unaffected', async (t) => {
  const B = 2, H = 1, Sq = 12, Skv = 200, D = 8;
  const p = problem(B, H, Sq, Skv, D, 400);
  const bias = randomFloats(Sq * Skv, 401);
  for (const i of [0, 5, 11]) bias.fill(-Infinity, i * Skv, (i + 1) * Skv);
  p.bias = { data: bias, strides: [0, 0, Skv, 1] };
  // Batch item 1 masks every key through key_bias as well.
  const kb = new Float32Array(B * Skv);
  kb.fill(-Infinity, Skv);
  p.keyBias = { data: kb, sb: Skv };
  const got = check(t, h1, p, 'masked rows');
  const zeroRow = (b: number, i: number) => got.out.subarray((b * Sq + i) * D, (b * Sq + i + 1) * D).every((x) => x === 0);
  t.ok([0, 5, 11].every((i) => zeroRow(0, i)), 'bias-masked rows are exactly 0');
  t.ok(Array.from({ length: Sq }, (_, i) => i).every((i) => zeroRow(1, i)), 'a fully key-masked batch item is exactly 0');
  t.ok([0, 5, 11].every((i) => got.lse![i] === -Infinity), 'their lse is -inf');
  t.ok(got.lse!.subarray(Sq).every((x) => x === -Infinity), 'the key-masked batch item has lse -inf everywhere');
  t.ok(got.lse!.subarray(1, 5).every(Number.isFinite), 'unmasked rows have a finite lse');
});

t.test('lse may be NULL and kv_len 0 masks everything', async (t) => {
  const p = problem(1, 2, 9, 33, 12, 500);
  const withLse = runNative(h1, p), without = runNative(h1, p, undefined, false);
  t.same(Array.from(without.out), Array.from(withLse.out), 'the output does not depend on lse being requested');
  const empty = { ...problem(1, 2, 9, 0, 12, 501) };
  const got = runNative(h1, empty);
  t.ok(got.out.every((x) => x === 0) && got.lse!.every((x) => x === -Infinity), 'no keys: out 0, lse -inf');
});

t.test('two threads give the same bits as one', async (t) => {
  for (const [B, H, Sq, Skv, D] of [[1, 1, 300, 200, 64], [1, 3, 150, 90, 40], [2, 2, 97, 300, 16]] as const) {
    const p = problem(B, H, Sq, Skv, D, 600 + Sq);
    const one = runNative(h1, p), two = runNative(h2, p);
    t.same(Array.from(two.out), Array.from(one.out), `B${B} H${H} Sq${Sq}: out identical`);
    t.same(Array.from(two.lse!), Array.from(one.lse!), `B${B} H${H} Sq${Sq}: lse identical`);
  }
});

t.test('a 4096-token sequence (head_dim 64) is right and needs no seq x seq memory', async (t) => {
  const S = 4096, D = 64;
  const p = problem(1, 1, S, S, D, 700);
  const before = h2.device.memoryStats();
  const rssBefore = process.memoryUsage().rss;
  const got = runNative(h2, p);
  const rssGrowth = process.memoryUsage().rss - rssBefore;
  const after = h2.device.memoryStats();
  // The op's only device allocations are this test's own buffers (q, k, v, out, lse); nothing via the allocator.
  const ownBytes = [S * D, S * D, S * D, S * D, S].reduce((a, n) => a + Math.ceil((n * 4) / 256) * 256, 0);
  t.ok(after.peak - before.inUse <= ownBytes + (1 << 20), `allocator peak grew by ${after.peak - before.inUse} B (own buffers ${ownBytes} B)`);
  // A seq x seq fp32 matrix would be 64 MiB; the workspace is O(seq x head_dim) (~2 MiB).
  t.ok(rssGrowth < 24 * 2 ** 20, `process RSS grew by ${(rssGrowth / 2 ** 20).toFixed(1)} MiB < 24 MiB`);
  // Reference for a sample of rows.
  const rows = [0, 1, 95, 96, 2047, 4000, 4095];
  const sample: Problem = { ...p, Sq: rows.length, q: new Float32Array(rows.length * D), qL: bshd(rows.length, 1, D) };
  rows.forEach((r, i) => sample.q.set(p.q.subarray(r * D, (r + 1) * D), i * D));
  const want = reference(sample);
  const gotRows = new Float32Array(rows.length * D), gotLse = new Float32Array(rows.length);
  rows.forEach((r, i) => { gotRows.set(got.out.subarray(r * D, (r + 1) * D), i * D); gotLse[i] = got.lse![r]!; });
  t.ok(maxErr(gotRows, want.out) <= OUT_TOL, 'sampled rows match');
  t.ok(maxErr(gotLse, want.lse, true) <= LSE_TOL, 'sampled lse match');
});

t.test('attention_merge of two key halves equals attention over all keys', async (t) => {
  const B = 2, H = 3, Sq = 45, Skv = 230, D = 24, split = 97;
  const full = problem(B, H, Sq, Skv, D, 800);
  const half = (j0: number, j1: number): Problem => {
    const pick = (x: Float32Array) => {
      const y = new Float32Array(B * (j1 - j0) * H * D);
      for (let b = 0; b < B; b++) y.set(x.subarray((b * Skv + j0) * H * D, (b * Skv + j1) * H * D), b * (j1 - j0) * H * D);
      return y;
    };
    return { ...full, Skv: j1 - j0, k: pick(full.k), kL: bshd(j1 - j0, H, D), v: pick(full.v), vL: bshd(j1 - j0, H, D) };
  };
  for (const h of [h1, h2]) {
    const a = runNative(h, half(0, split)), b = runNative(h, half(split, Skv));
    // Accumulator in [B, H, S, D], partial in [B, S, H, D]: each side uses its own strides.
    const accL = bhsd(Sq, H, D), partL = bshd(Sq, H, D);
    const accHost = new Float32Array(B * H * Sq * D);
    for (let bb = 0; bb < B; bb++) for (let i = 0; i < Sq; i++) for (let hh = 0; hh < H; hh++)
      accHost.set(a.out.subarray(((bb * Sq + i) * H + hh) * D, ((bb * Sq + i) * H + hh + 1) * D), at(accL, bb, i, hh));
    const pAcc = h.upload(accHost), pLseAcc = h.upload(a.lse!), pPart = h.upload(b.out), pLsePart = h.upload(b.lse!);
    h.check(h.lib.fns.sgld_attention_merge(h.ctx, NativeDType.F32, B, H, Sq, D, pAcc, i64(...accL.strides), pLseAcc,
      pPart, i64(...partL.strides), pLsePart), 'sgld_attention_merge');
    const merged = h.download(pAcc, accHost.length), mergedLse = h.download(pLseAcc, B * H * Sq);
    const mergedOut = new Float32Array(B * Sq * H * D);
    for (let bb = 0; bb < B; bb++) for (let i = 0; i < Sq; i++) for (let hh = 0; hh < H; hh++)
      mergedOut.set(merged.subarray(at(accL, bb, i, hh), at(accL, bb, i, hh) + D), ((bb * Sq + i) * H + hh) * D);
    const want = reference(full);
    const threads = h === h1 ? 1 : 2;
    t.ok(maxErr(mergedOut, want.out) <= OUT_TOL, `${threads} thread(s): merged out matches full attention`);
    t.ok(maxErr(mergedLse, want.lse, true) <= LSE_TOL, `${threads} thread(s): merged lse matches full attention`);
    for (const p of [pAcc, pLseAcc, pPart, pLsePart]) h.free(p);
  }
});

t.test('merging an empty partial (lse -inf) leaves the accumulator; an empty accumulator takes the partial', async (t) => {
  const B = 1, H = 2, S = 7, D = 5, L = bshd(S, H, D);
  const out = randomFloats(B * S * H * D, 900), lse = randomFloats(B * H * S, 901, 3);
  const zeros = new Float32Array(out.length), empty = new Float32Array(lse.length).fill(-Infinity);
  const merge = (acc: Float32Array, lseAcc: Float32Array, part: Float32Array, lsePart: Float32Array) => {
    const pa = h1.upload(acc), pla = h1.upload(lseAcc), pp = h1.upload(part), plp = h1.upload(lsePart);
    h1.check(h1.lib.fns.sgld_attention_merge(h1.ctx, NativeDType.F32, B, H, S, D, pa, i64(...L.strides), pla, pp, i64(...L.strides), plp), 'sgld_attention_merge');
    const r = { out: h1.download(pa, acc.length), lse: h1.download(pla, lseAcc.length) };
    for (const p of [pa, pla, pp, plp]) h1.free(p);
    return r;
  };
  const kept = merge(out, lse, zeros, empty);
  t.ok(maxErr(kept.out, out) <= 1e-7 && maxErr(kept.lse, lse) <= 1e-7, 'accumulator unchanged');
  const taken = merge(zeros, empty, out, lse);
  t.ok(maxErr(taken.out, out) <= 1e-7 && maxErr(taken.lse, lse) <= 1e-7, 'partial taken over');
  const both = merge(zeros, empty, zeros, empty);
  t.ok(both.out.every((x) => x === 0) && both.lse.every((x) => x === -Infinity), 'two empty results stay empty');
});

t.test('bad arguments are errors with a message', async (t) => {
  const p = h1.alloc(64), s = i64(0, 0, 0);
  const call = (dtype: number, D: number, bias: Ptr | null) => h1.lib.fns.sgld_attention(h1.ctx, dtype, 1, 1, 2, 2, D,
    p, s, p, s, p, s, p, s, null, 1, bias, null, null, 0);
  t.equal(call(NativeDType.BF16, 4, null), Status.UNSUPPORTED, 'BF16 storage is unsupported on the CPU backend');
  t.equal(call(NativeDType.F32, 0, null), Status.INVALID, 'head_dim 0 is invalid');
  t.equal(call(NativeDType.F32, 4, p), Status.INVALID, 'a bias without strides is invalid');
  t.match(h1.lib.fns.sgld_last_error(), /bias_strides/, 'the message says what is missing');
});
