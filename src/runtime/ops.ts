// Tensor-level ops: shape checks and layout handling in TS, the arithmetic in the native library.
// Every op allocates its output in the current scope (see tensor.ts) and computes in the tensors' dtype
// (fp32 on the CPU backend; bf16 storage with fp32 accumulation on CUDA).
import { Activation, type ActivationCode, BinaryOp, type BinaryOpCode } from './native.js';
import type { Device } from './device.js';
import { type DType, dtypeCode } from './dtype.js';
import { Tensor, contiguousStrides, copyInto, copyTo, numelOf } from './tensor.js';

export { Activation, BinaryOp };
export type { ActivationCode, BinaryOpCode };

const i64 = (xs: readonly number[]): BigInt64Array => BigInt64Array.from(xs.map((x) => BigInt(x)));
const shapeStr = (t: Tensor): string => `[${t.shape.join(', ')}]`;

function fail(op: string, msg: string): never {
  throw new Error(`sgld.${op}: ${msg}`);
}

function sameDevice(op: string, ...ts: (Tensor | undefined | null)[]): Device {
  const first = ts.find((t) => t)!;
  for (const t of ts) if (t && t.device !== first.device) fail(op, 'tensors live on different devices');
  return first.device;
}

function requireContiguous(op: string, name: string, t: Tensor): void {
  if (!t.isContiguous) fail(op, `${name} ${shapeStr(t)} must be contiguous (call contiguous() first)`);
}

function requireDType(op: string, dtype: DType, ...ts: (Tensor | undefined | null)[]): void {
  for (const t of ts) if (t && t.dtype !== dtype) fail(op, `expected ${dtype} tensors, got ${t.dtype}`);
}

/** `t` itself when contiguous, else a contiguous copy. */
export function contiguous(t: Tensor): Tensor {
  return t.isContiguous ? t : copyTo(t, t.dtype);
}

/** A copy converted to `dtype` (always a new tensor). */
export function cast(t: Tensor, dtype: DType): Tensor {
  return copyTo(t, dtype);
}

/** Device tensor from host fp32 values, stored as `dtype` (default: the device's compute dtype). */
export function fromFloat32(device: Device, data: Float32Array, shape: readonly number[], dtype: DType = device.computeDType): Tensor {
  const f = Tensor.fromHost(device, data, shape, 'f32');
  if (dtype === 'f32') return f;
  const out = copyTo(f, dtype);
  f.free();
  return out;
}

export function empty(device: Device, shape: readonly number[], dtype: DType = device.computeDType): Tensor {
  return Tensor.empty(device, shape, dtype);
}

export function full(device: Device, shape: readonly number[], value: number, dtype: DType = device.computeDType): Tensor {
  const t = Tensor.empty(device, shape, dtype);
  device.lib.check(device.lib.fns.sgld_fill(device.ctx, dtypeCode(dtype), t.numel, t.ptr, value), 'sgld_fill');
  return t;
}

export const zeros = (device: Device, shape: readonly number[], dtype?: DType): Tensor => full(device, shape, 0, dtype);

/** Concatenation along `dim`. */
export function cat(tensors: readonly Tensor[], dim: number): Tensor {
  if (tensors.length === 0) fail('cat', 'no tensors');
  const first = tensors[0]!;
  const d = dim < 0 ? first.ndim + dim : dim;
  const shape = [...first.shape];
  shape[d] = 0;
  for (const t of tensors) {
    if (t.ndim !== first.ndim || t.shape.some((s, i) => i !== d && s !== first.shape[i])) {
      fail('cat', `shapes ${tensors.map(shapeStr).join(', ')} do not match outside dim ${d}`);
    }
    shape[d] += t.shape[d]!;
  }
  const out = Tensor.empty(sameDevice('cat', ...tensors), shape, first.dtype);
  let at = 0;
  for (const t of tensors) {
    copyInto(out.slice(d, at, at + t.shape[d]!), t);
    at += t.shape[d]!;
  }
  return out;
}

// ---- GEMM --------------------------------------------------------------------------------------------------

/** Views x [..., cols] as a (rows x cols) matrix with one row stride; the last dim must be dense. */
function matrixView(op: string, name: string, t: Tensor): { rows: number; cols: number; ld: number } {
  const nd = t.ndim;
  const cols = t.shape[nd - 1]!;
  if (t.strides[nd - 1] !== 1 && cols !== 1) fail(op, `${name} ${shapeStr(t)} needs a dense last dim`);
  if (nd === 1) return { rows: 1, cols, ld: cols };
  for (let i = 0; i < nd - 2; i++) {
    if (t.shape[i] !== 1 && t.strides[i] !== t.strides[i + 1]! * t.shape[i + 1]!) fail(op, `${name} ${shapeStr(t)}: leading dims are not collapsible`);
  }
  const rows = t.numel / Math.max(cols, 1);
  return { rows, cols, ld: t.shape[nd - 2] === 1 ? cols : Math.max(t.strides[nd - 2]!, cols) };
}

/**
 * A linear layer: y[..., out] = act(x[..., in] @ weight[out, in]^T + bias[out]).
 * x's leading dims are flattened into rows (they must be collapsible, e.g. contiguous).
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null, activation: ActivationCode = Activation.NONE): Tensor {
  const device = sameDevice('linear', x, weight, bias);
  requireDType('linear', x.dtype, weight, bias);
  if (weight.ndim !== 2) fail('linear', `weight must be [out, in], got ${shapeStr(weight)}`);
  const [outF, inF] = weight.shape as [number, number];
  if (x.shape[x.ndim - 1] !== inF) fail('linear', `input ${shapeStr(x)} does not match weight ${shapeStr(weight)}`);
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== outF)) fail('linear', `bias ${shapeStr(bias)} does not match ${outF} outputs`);
  requireContiguous('linear', 'weight', weight);
  const xv = matrixView('linear', 'input', x);
  const y = Tensor.empty(device, [...x.shape.slice(0, -1), outF], x.dtype);
  device.lib.check(device.lib.fns.sgld_gemm(device.ctx, dtypeCode(x.dtype), 0, 1, xv.rows, outF, inF, 1,
    x.ptr, xv.ld, 0, weight.ptr, inF, 0, 0, y.ptr, outF, 0, 1, bias ? contiguous(bias).ptr : null, activation), 'sgld_gemm');
  return y;
}

export interface MatmulOptions { transA?: boolean; transB?: boolean; alpha?: number; beta?: number; out?: Tensor; bias?: Tensor; activation?: ActivationCode }

/**
 * Batched matrix product of [..., m, k] x [..., k, n] (with optional transposes of the stored operands).
 * Batch dims must match (no broadcasting) and each operand's batch must be uniformly strided.
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const device = sameDevice('matmul', a, b, opts.out);
  requireDType('matmul', a.dtype, b, opts.out);
  if (a.ndim < 2 || b.ndim < 2 || a.ndim !== b.ndim) fail('matmul', `operands ${shapeStr(a)} and ${shapeStr(b)} must have the same rank >= 2`);
  const nd = a.ndim;
  const batchShape = a.shape.slice(0, -2);
  if (b.shape.slice(0, -2).some((s, i) => s !== batchShape[i])) fail('matmul', `batch dims of ${shapeStr(a)} and ${shapeStr(b)} differ`);
  const ta = !!opts.transA, tb = !!opts.transB;
  const m = ta ? a.shape[nd - 1]! : a.shape[nd - 2]!;
  const k = ta ? a.shape[nd - 2]! : a.shape[nd - 1]!;
  const kb = tb ? b.shape[nd - 1]! : b.shape[nd - 2]!;
  const n = tb ? b.shape[nd - 2]! : b.shape[nd - 1]!;
  if (k !== kb) fail('matmul', `inner dims differ: ${shapeStr(a)}${ta ? '^T' : ''} x ${shapeStr(b)}${tb ? '^T' : ''}`);
  const batch = numelOf(batchShape);
  const batchStride = (t: Tensor, name: string): number => {
    if (batch <= 1) return 0;
    // batch dims must collapse to one stride
    let s = t.strides[nd - 3]!;
    for (let i = nd - 3; i > 0; i--) if (t.shape[i - 1] !== 1 && t.strides[i - 1] !== t.strides[i]! * t.shape[i]!) fail('matmul', `${name} batch dims are not uniformly strided`);
    if (t.shape[nd - 3] === 1) s = t.strides[nd - 3]!;
    return s;
  };
  for (const [t, name] of [[a, 'a'], [b, 'b']] as const) {
    if (t.strides[nd - 1] !== 1 && !(t.strides[nd - 2] === 1)) fail('matmul', `${name} ${shapeStr(t)} needs one dense matrix dim`);
  }
  // A stored row-major with a dense last dim, or transposed storage (dense second-to-last) flips the flag.
  const asGemm = (t: Tensor, trans: boolean): { trans: boolean; ld: number } => {
    if (t.strides[nd - 1] === 1) return { trans, ld: Math.max(t.strides[nd - 2]!, t.shape[nd - 1]!) };
    return { trans: !trans, ld: Math.max(t.strides[nd - 1]!, t.shape[nd - 2]!) };
  };
  const ga = asGemm(a, ta), gb = asGemm(b, tb);
  const out = opts.out ?? Tensor.empty(device, [...batchShape, m, n], a.dtype);
  if (opts.out) {
    if (out.shape.length !== nd || out.shape[nd - 2] !== m || out.shape[nd - 1] !== n) fail('matmul', `out ${shapeStr(out)} should be [..., ${m}, ${n}]`);
    if (out.strides[nd - 1] !== 1) fail('matmul', 'out needs a dense last dim');
  }
  const ldc = out.strides[nd - 2]!;
  device.lib.check(device.lib.fns.sgld_gemm(device.ctx, dtypeCode(a.dtype), ga.trans ? 1 : 0, gb.trans ? 1 : 0, m, n, k,
    opts.alpha ?? 1, a.ptr, ga.ld, batchStride(a, 'a'), b.ptr, gb.ld, batchStride(b, 'b'),
    opts.beta ?? 0, out.ptr, ldc, batch > 1 ? batchStride(out, 'out') : 0, batch,
    opts.bias ? contiguous(opts.bias).ptr : null, opts.activation ?? Activation.NONE), 'sgld_gemm');
  return out;
}

// ---- attention ---------------------------------------------------------------------------------------------

export interface AttentionOptions {
  /** Softmax scale; default 1/sqrt(head_dim). */
  scale?: number;
  /** fp32 additive bias broadcastable to [batch, heads, q_len, kv_len] (4-D tensor; size-1 dims broadcast). */
  bias?: Tensor | null;
  /** fp32 [batch, kv_len] additive key bias (0 keep, -inf mask). */
  keyBias?: Tensor | null;
  /** Also return the per-row log-sum-exp, fp32 [batch, heads, q_len]. */
  returnLse?: boolean;
}

/**
 * Scaled dot-product attention over q [B, Sq, H, D], k/v [B, Skv, H, D] (any strides with a dense head_dim);
 * returns out [B, Sq, H, D] contiguous (and lse when asked).
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): { out: Tensor; lse?: Tensor } {
  const device = sameDevice('attention', q, k, v, opts.bias, opts.keyBias);
  requireDType('attention', q.dtype, k, v);
  for (const [t, n] of [[q, 'q'], [k, 'k'], [v, 'v']] as const) {
    if (t.ndim !== 4) fail('attention', `${n} must be [batch, seq, heads, head_dim], got ${shapeStr(t)}`);
    if (t.strides[3] !== 1) fail('attention', `${n} needs a dense head_dim`);
  }
  const [B, Sq, H, D] = q.shape as [number, number, number, number];
  const Skv = k.shape[1]!;
  if (k.shape[0] !== B || k.shape[2] !== H || k.shape[3] !== D) fail('attention', `k ${shapeStr(k)} does not match q ${shapeStr(q)}`);
  if (v.shape[0] !== B || v.shape[1] !== Skv || v.shape[2] !== H || v.shape[3] !== D) fail('attention', `v ${shapeStr(v)} does not match k ${shapeStr(k)}`);
  const out = Tensor.empty(device, [B, Sq, H, D], q.dtype);
  const lse = opts.returnLse ? Tensor.empty(device, [B, H, Sq], 'f32') : null;
  let biasStrides: BigInt64Array | null = null;
  if (opts.bias) {
    const bt = opts.bias;
    requireDType('attention', 'f32', bt);
    if (bt.ndim !== 4) fail('attention', `bias must be 4-D (broadcastable to [B, H, Sq, Skv]), got ${shapeStr(bt)}`);
    const full = [B, H, Sq, Skv];
    biasStrides = i64(bt.shape.map((s, i) => {
      if (s === full[i]) return bt.strides[i]!;
      if (s === 1) return 0;
      return fail('attention', `bias ${shapeStr(bt)} does not broadcast to [${full.join(', ')}]`);
    }));
  }
  let keyBiasSb = 0;
  if (opts.keyBias) {
    const kb = opts.keyBias;
    requireDType('attention', 'f32', kb);
    if (kb.ndim !== 2 || (kb.shape[0] !== B && kb.shape[0] !== 1) || kb.shape[1] !== Skv || kb.strides[1] !== 1) {
      fail('attention', `keyBias must be [${B}, ${Skv}] with dense keys, got ${shapeStr(kb)}`);
    }
    keyBiasSb = kb.shape[0] === 1 ? 0 : kb.strides[0]!;
  }
  const st = (t: Tensor): BigInt64Array => i64([t.strides[0]!, t.strides[1]!, t.strides[2]!]);
  device.lib.check(device.lib.fns.sgld_attention(device.ctx, dtypeCode(q.dtype), B, H, Sq, Skv, D,
    q.ptr, st(q), k.ptr, st(k), v.ptr, st(v), out.ptr, st(out), lse ? lse.ptr : null,
    opts.scale ?? 1 / Math.sqrt(D), opts.bias ? opts.bias.ptr : null, biasStrides,
    opts.keyBias ? opts.keyBias.ptr : null, keyBiasSb), 'sgld_attention');
  return lse ? { out, lse } : { out };
}

/** Merges a partial attention result (out, lse) into an accumulator in place (ring attention). */
export function attentionMerge(outAcc: Tensor, lseAcc: Tensor, outPart: Tensor, lsePart: Tensor): void {
  const device = sameDevice('attentionMerge', outAcc, lseAcc, outPart, lsePart);
  const [B, S, H, D] = outAcc.shape as [number, number, number, number];
  requireContiguous('attentionMerge', 'lseAcc', lseAcc);
  requireContiguous('attentionMerge', 'lsePart', lsePart);
  const st = (t: Tensor): BigInt64Array => i64([t.strides[0]!, t.strides[1]!, t.strides[2]!]);
  device.lib.check(device.lib.fns.sgld_attention_merge(device.ctx, dtypeCode(outAcc.dtype), B, H, S, D,
    outAcc.ptr, st(outAcc), lseAcc.ptr, outPart.ptr, st(outPart), lsePart.ptr), 'sgld_attention_merge');
}

// ---- normalisation -----------------------------------------------------------------------------------------

function rowsOf(op: string, x: Tensor): { rows: number; dim: number } {
  requireContiguous(op, 'input', x);
  const dim = x.shape[x.ndim - 1]!;
  return { rows: x.numel / Math.max(dim, 1), dim };
}

/** LayerNorm over the last dim (weight/bias optional). */
export function layerNorm(x: Tensor, weight: Tensor | null | undefined, bias: Tensor | null | undefined, eps: number): Tensor {
  const device = sameDevice('layerNorm', x, weight, bias);
  const { rows, dim } = rowsOf('layerNorm', x);
  const y = Tensor.empty(device, x.shape, x.dtype);
  device.lib.check(device.lib.fns.sgld_layer_norm(device.ctx, dtypeCode(x.dtype), rows, dim, x.ptr, y.ptr,
    weight ? weight.ptr : null, bias ? bias.ptr : null, eps), 'sgld_layer_norm');
  return y;
}

/** RMSNorm over the last dim (Wan's q/k norm across heads when the last dim is heads * head_dim). */
export function rmsNorm(x: Tensor, weight: Tensor | null | undefined, eps: number): Tensor {
  const device = sameDevice('rmsNorm', x, weight);
  const { rows, dim } = rowsOf('rmsNorm', x);
  const y = Tensor.empty(device, x.shape, x.dtype);
  device.lib.check(device.lib.fns.sgld_rms_norm(device.ctx, dtypeCode(x.dtype), rows, dim, x.ptr, y.ptr,
    weight ? weight.ptr : null, eps), 'sgld_rms_norm');
  return y;
}

/** GroupNorm of [N, C, ...spatial]. */
export function groupNorm(x: Tensor, groups: number, weight: Tensor | null | undefined, bias: Tensor | null | undefined, eps: number): Tensor {
  const device = sameDevice('groupNorm', x, weight, bias);
  requireContiguous('groupNorm', 'input', x);
  const [n, c] = x.shape as [number, number];
  if (c % groups !== 0) fail('groupNorm', `${c} channels do not split into ${groups} groups`);
  const y = Tensor.empty(device, x.shape, x.dtype);
  device.lib.check(device.lib.fns.sgld_group_norm(device.ctx, dtypeCode(x.dtype), n, c, x.numel / (n * c), groups,
    x.ptr, y.ptr, weight ? weight.ptr : null, bias ? bias.ptr : null, eps), 'sgld_group_norm');
  return y;
}

/** L2 normalisation across the channel dim (dim 1) of [N, C, ...] times scale*gamma plus beta (Wan VAE RMS_norm). */
export function channelNorm(x: Tensor, gamma: Tensor | null | undefined, beta: Tensor | null | undefined, scale: number, eps: number, channelDim = 1): Tensor {
  const device = sameDevice('channelNorm', x, gamma, beta);
  requireContiguous('channelNorm', 'input', x);
  const outer = numelOf(x.shape.slice(0, channelDim));
  const channels = x.shape[channelDim]!;
  const inner = numelOf(x.shape.slice(channelDim + 1));
  const y = Tensor.empty(device, x.shape, x.dtype);
  device.lib.check(device.lib.fns.sgld_channel_norm(device.ctx, dtypeCode(x.dtype), outer, channels, inner, x.ptr, y.ptr,
    gamma ? gamma.ptr : null, beta ? beta.ptr : null, scale, eps), 'sgld_channel_norm');
  return y;
}

// ---- elementwise -------------------------------------------------------------------------------------------

function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1, db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) fail(op, `shapes [${a.join(', ')}] and [${b.join(', ')}] do not broadcast`);
    out.push(Math.max(da, db));
  }
  return out;
}

/** Collapses a broadcast (shape, strides...) triple to at most 6 dims by merging dims contiguous in all. */
function collapse3(shape: number[], sa: number[], sb: number[], sy: number[]): [number[], number[], number[], number[]] {
  const S: number[] = [], A: number[] = [], Bs: number[] = [], Y: number[] = [];
  for (let i = 0; i < shape.length; i++) {
    if (shape[i] === 1) continue;
    const n = S.length;
    if (n > 0 && A[n - 1] === sa[i]! * shape[i]! && Bs[n - 1] === sb[i]! * shape[i]! && Y[n - 1] === sy[i]! * shape[i]!) {
      S[n - 1]! *= shape[i]!; A[n - 1] = sa[i]!; Bs[n - 1] = sb[i]!; Y[n - 1] = sy[i]!;
    } else { S.push(shape[i]!); A.push(sa[i]!); Bs.push(sb[i]!); Y.push(sy[i]!); }
  }
  if (S.length === 0) return [[1], [0], [0], [1]];
  return [S, A, Bs, Y];
}

/** y = a OP b with numpy broadcasting; `out` (optional) receives the result and may alias a or b. */
export function binary(op: BinaryOpCode, a: Tensor, b: Tensor, out?: Tensor): Tensor {
  const device = sameDevice('binary', a, b, out);
  requireDType('binary', a.dtype, b, out);
  const shape = broadcastShapes('binary', a.shape, b.shape);
  const y = out ?? Tensor.empty(device, shape, a.dtype);
  if (y.shape.length !== shape.length || y.shape.some((s, i) => s !== shape[i])) fail('binary', `out ${shapeStr(y)} should be [${shape.join(', ')}]`);
  const ea = a.expand(shape), eb = b.expand(shape);
  const [S, A, Bs, Y] = collapse3(shape, [...ea.strides], [...eb.strides], [...y.strides]);
  if (S.length > 6) fail('binary', `more than 6 non-mergeable dims in [${shape.join(', ')}]`);
  device.lib.check(device.lib.fns.sgld_binary(device.ctx, dtypeCode(a.dtype), op, S.length, i64(S), ea.ptr, i64(A),
    eb.ptr, i64(Bs), y.ptr, i64(Y)), 'sgld_binary');
  return y;
}

export const add = (a: Tensor, b: Tensor, out?: Tensor): Tensor => binary(BinaryOp.ADD, a, b, out);
export const sub = (a: Tensor, b: Tensor, out?: Tensor): Tensor => binary(BinaryOp.SUB, a, b, out);
export const mul = (a: Tensor, b: Tensor, out?: Tensor): Tensor => binary(BinaryOp.MUL, a, b, out);
export const div = (a: Tensor, b: Tensor, out?: Tensor): Tensor => binary(BinaryOp.DIV, a, b, out);

/** Elementwise activation (SGLD_ACT_*); `inPlace` writes into x. */
export function activation(x: Tensor, act: ActivationCode, inPlace = false): Tensor {
  requireContiguous('activation', 'input', x);
  const y = inPlace ? x : Tensor.empty(x.device, x.shape, x.dtype);
  x.device.lib.check(x.device.lib.fns.sgld_activation(x.device.ctx, dtypeCode(x.dtype), act, x.numel, x.ptr, y.ptr), 'sgld_activation');
  return y;
}

export const gelu = (x: Tensor, approximate: 'tanh' | 'none' = 'none'): Tensor =>
  activation(x, approximate === 'tanh' ? Activation.GELU_TANH : Activation.GELU_ERF);
export const silu = (x: Tensor): Tensor => activation(x, Activation.SILU);

/** y = alpha * x + beta. */
export function affine(x: Tensor, alpha: number, beta = 0, inPlace = false): Tensor {
  requireContiguous('affine', 'input', x);
  const y = inPlace ? x : Tensor.empty(x.device, x.shape, x.dtype);
  x.device.lib.check(x.device.lib.fns.sgld_affine(x.device.ctx, dtypeCode(x.dtype), x.numel, x.ptr, y.ptr, alpha, beta), 'sgld_affine');
  return y;
}

/**
 * Gated activation: act(gate) * up, both [..., dim]; pass `fused` [..., 2*dim] instead to split one
 * projection's output in halves (gate first).
 */
export function gatedActivation(act: ActivationCode, gate: Tensor, up?: Tensor): Tensor {
  const device = sameDevice('gatedActivation', gate, up);
  requireContiguous('gatedActivation', 'gate', gate);
  let dim: number, ldIn: number, upPtr;
  if (up) {
    requireContiguous('gatedActivation', 'up', up);
    if (up.shape.some((s, i) => s !== gate.shape[i])) fail('gatedActivation', `gate ${shapeStr(gate)} and up ${shapeStr(up)} differ`);
    dim = gate.shape[gate.ndim - 1]!; ldIn = dim; upPtr = up.ptr;
  } else {
    const full = gate.shape[gate.ndim - 1]!;
    if (full % 2) fail('gatedActivation', `fused input last dim ${full} is odd`);
    dim = full / 2; ldIn = full; upPtr = gate.ptr + BigInt(dim * gate.itemSize);
  }
  const rows = gate.numel / ldIn;
  const y = Tensor.empty(device, [...gate.shape.slice(0, -1), dim], gate.dtype);
  device.lib.check(device.lib.fns.sgld_gated_activation(device.ctx, dtypeCode(gate.dtype), act, rows, dim, gate.ptr, upPtr, ldIn, y.ptr), 'sgld_gated_activation');
  return y;
}

export function softmax(x: Tensor): Tensor {
  const { rows, dim } = rowsOf('softmax', x);
  const y = Tensor.empty(x.device, x.shape, x.dtype);
  x.device.lib.check(x.device.lib.fns.sgld_softmax(x.device.ctx, dtypeCode(x.dtype), rows, dim, x.ptr, y.ptr), 'sgld_softmax');
  return y;
}

/** Reads a modulation vector tensor ([B, D] / [B, 1, D] per item, or [B, S, D] per token) as (sb, ss). */
function modStrides(op: string, m: Tensor, B: number, S: number, D: number): { sb: number; ss: number } {
  if (m.strides[m.ndim - 1] !== 1 || m.shape[m.ndim - 1] !== D) fail(op, `modulation ${shapeStr(m)} must end in a dense ${D}`);
  if (m.ndim === 2 && (m.shape[0] === B || m.shape[0] === 1)) return { sb: m.shape[0] === 1 ? 0 : m.strides[0]!, ss: 0 };
  if (m.ndim === 3 && (m.shape[0] === B || m.shape[0] === 1) && (m.shape[1] === 1 || m.shape[1] === S)) {
    return { sb: m.shape[0] === 1 ? 0 : m.strides[0]!, ss: m.shape[1] === 1 ? 0 : m.strides[1]! };
  }
  return fail(op, `modulation ${shapeStr(m)} does not fit [${B}, ${S}, ${D}]`);
}

/** y = x * (1 + scale) + shift on x [B, S, D]; scale/shift [B, D], [B, 1, D] or [B, S, D] (same layout). */
export function modulate(x: Tensor, scale: Tensor, shift: Tensor, inPlace = false): Tensor {
  const device = sameDevice('modulate', x, scale, shift);
  requireContiguous('modulate', 'input', x);
  if (x.ndim !== 3) fail('modulate', `x must be [batch, seq, dim], got ${shapeStr(x)}`);
  const [B, S, D] = x.shape as [number, number, number];
  const a = modStrides('modulate', scale, B, S, D), b = modStrides('modulate', shift, B, S, D);
  if (a.sb !== b.sb || a.ss !== b.ss) fail('modulate', 'scale and shift must share one layout');
  const y = inPlace ? x : Tensor.empty(device, x.shape, x.dtype);
  device.lib.check(device.lib.fns.sgld_modulate(device.ctx, dtypeCode(x.dtype), B, S, D, x.ptr, scale.ptr, shift.ptr, a.sb, a.ss, y.ptr), 'sgld_modulate');
  return y;
}

/** residual += y * gate, in place on residual [B, S, D]; gate [B, D], [B, 1, D] or [B, S, D]. */
export function gatedResidual(residual: Tensor, y: Tensor, gate: Tensor): Tensor {
  const device = sameDevice('gatedResidual', residual, y, gate);
  requireContiguous('gatedResidual', 'residual', residual);
  requireContiguous('gatedResidual', 'y', y);
  if (residual.ndim !== 3) fail('gatedResidual', `residual must be [batch, seq, dim], got ${shapeStr(residual)}`);
  const [B, S, D] = residual.shape as [number, number, number];
  const g = modStrides('gatedResidual', gate, B, S, D);
  device.lib.check(device.lib.fns.sgld_gated_residual(device.ctx, dtypeCode(residual.dtype), B, S, D, residual.ptr, y.ptr, gate.ptr, g.sb, g.ss), 'sgld_gated_residual');
  return residual;
}

// ---- rotary embedding --------------------------------------------------------------------------------------

/**
 * Rotates x [B, S, H, D] by fp32 tables cos/sin [S, D/2] (device tensors). interleaved: pairs (2i, 2i+1)
 * (Wan, Z-Image); otherwise rotate-half pairs (i, i + D/2) (Qwen). Returns a new contiguous tensor.
 */
export function rope(x: Tensor, cos: Tensor, sin: Tensor, interleaved: boolean): Tensor {
  const device = sameDevice('rope', x, cos, sin);
  if (x.ndim !== 4 || x.strides[3] !== 1) fail('rope', `x must be [batch, seq, heads, head_dim] with dense head_dim, got ${shapeStr(x)}`);
  const [B, S, H, D] = x.shape as [number, number, number, number];
  for (const t of [cos, sin]) {
    requireDType('rope', 'f32', t);
    requireContiguous('rope', 'table', t);
    if (t.numel !== S * (D / 2)) fail('rope', `table ${shapeStr(t)} should be [${S}, ${D / 2}]`);
  }
  const y = Tensor.empty(device, x.shape, x.dtype);
  const st = (t: Tensor): BigInt64Array => i64([t.strides[0]!, t.strides[1]!, t.strides[2]!]);
  device.lib.check(device.lib.fns.sgld_rope(device.ctx, dtypeCode(x.dtype), B, S, H, D, x.ptr, st(x), y.ptr, st(y),
    cos.ptr, sin.ptr, interleaved ? 1 : 0), 'sgld_rope');
  return y;
}

// ---- convolution -------------------------------------------------------------------------------------------

export interface Conv3dOptions {
  stride?: [number, number, number];
  /** {t_front, t_back, h_top, h_bottom, w_left, w_right} zero padding. */
  pads?: [number, number, number, number, number, number];
}

/** conv3d of x [N, Cin, T, H, W] with weight [Cout, Cin, kt, kh, kw]. */
export function conv3d(x: Tensor, weight: Tensor, bias: Tensor | null | undefined, opts: Conv3dOptions = {}): Tensor {
  const device = sameDevice('conv3d', x, weight, bias);
  requireContiguous('conv3d', 'input', x);
  requireContiguous('conv3d', 'weight', weight);
  if (x.ndim !== 5 || weight.ndim !== 5) fail('conv3d', `expected 5-D input and weight, got ${shapeStr(x)} and ${shapeStr(weight)}`);
  const [n, cin, t, h, w] = x.shape as [number, number, number, number, number];
  const [cout, wcin, kt, kh, kw] = weight.shape as [number, number, number, number, number];
  if (wcin !== cin) fail('conv3d', `weight ${shapeStr(weight)} expects ${wcin} input channels, input has ${cin}`);
  const st = opts.stride ?? [1, 1, 1];
  const p = opts.pads ?? [0, 0, 0, 0, 0, 0];
  const to = Math.floor((t + p[0] + p[1] - kt) / st[0]) + 1;
  const ho = Math.floor((h + p[2] + p[3] - kh) / st[1]) + 1;
  const wo = Math.floor((w + p[4] + p[5] - kw) / st[2]) + 1;
  if (to <= 0 || ho <= 0 || wo <= 0) fail('conv3d', `input ${shapeStr(x)} is smaller than kernel ${shapeStr(weight)}`);
  const y = Tensor.empty(device, [n, cout, to, ho, wo], x.dtype);
  device.lib.check(device.lib.fns.sgld_conv3d(device.ctx, dtypeCode(x.dtype), n, cin, t, h, w, x.ptr, cout, kt, kh, kw,
    weight.ptr, bias ? bias.ptr : null, Int32Array.from(st), Int32Array.from(p), y.ptr), 'sgld_conv3d');
  return y;
}

export interface Conv2dOptions {
  stride?: [number, number];
  /** {top, bottom, left, right} zero padding. */
  pads?: [number, number, number, number];
}

/** conv2d of x [N, Cin, H, W] with weight [Cout, Cin, kh, kw]. */
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null | undefined, opts: Conv2dOptions = {}): Tensor {
  const device = sameDevice('conv2d', x, weight, bias);
  requireContiguous('conv2d', 'input', x);
  requireContiguous('conv2d', 'weight', weight);
  if (x.ndim !== 4 || weight.ndim !== 4) fail('conv2d', `expected 4-D input and weight, got ${shapeStr(x)} and ${shapeStr(weight)}`);
  const [n, cin, h, w] = x.shape as [number, number, number, number];
  const [cout, wcin, kh, kw] = weight.shape as [number, number, number, number];
  if (wcin !== cin) fail('conv2d', `weight ${shapeStr(weight)} expects ${wcin} input channels, input has ${cin}`);
  const st = opts.stride ?? [1, 1];
  const p = opts.pads ?? [0, 0, 0, 0];
  const ho = Math.floor((h + p[0] + p[1] - kh) / st[0]) + 1;
  const wo = Math.floor((w + p[2] + p[3] - kw) / st[1]) + 1;
  if (ho <= 0 || wo <= 0) fail('conv2d', `input ${shapeStr(x)} is smaller than kernel ${shapeStr(weight)}`);
  const y = Tensor.empty(device, [n, cout, ho, wo], x.dtype);
  device.lib.check(device.lib.fns.sgld_conv2d(device.ctx, dtypeCode(x.dtype), n, cin, h, w, x.ptr, cout, kh, kw,
    weight.ptr, bias ? bias.ptr : null, Int32Array.from(st), Int32Array.from(p), y.ptr), 'sgld_conv2d');
  return y;
}

/** Nearest upsampling of [N, C, H, W] (factors [fh, fw]) or [N, C, T, H, W] (factors [ft, fh, fw]). */
export function upsampleNearest(x: Tensor, factors: readonly number[]): Tensor {
  requireContiguous('upsampleNearest', 'input', x);
  const is3d = x.ndim === 5;
  if (!(is3d || x.ndim === 4) || factors.length !== x.ndim - 2) fail('upsampleNearest', `bad input ${shapeStr(x)} / factors [${factors.join(', ')}]`);
  const [n, c] = x.shape as [number, number];
  const [t, h, w] = is3d ? x.shape.slice(2) as [number, number, number] : [1, x.shape[2]!, x.shape[3]!];
  const [ft, fh, fw] = is3d ? factors as [number, number, number] : [1, factors[0]!, factors[1]!];
  const shape = is3d ? [n, c, t * ft, h * fh, w * fw] : [n, c, h * fh, w * fw];
  const y = Tensor.empty(x.device, shape, x.dtype);
  x.device.lib.check(x.device.lib.fns.sgld_upsample_nearest(x.device.ctx, dtypeCode(x.dtype), n, c, t, h, w, ft, fh, fw, x.ptr, y.ptr), 'sgld_upsample_nearest');
  return y;
}

export { contiguousStrides, copyInto, copyTo };
