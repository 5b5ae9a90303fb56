// The koffi binding of native-build/include/sgld.h — one declaration per C function, in header order.
// test/unit/native-binding.test.ts checks that this table and the header name the same functions.
import koffi from 'koffi';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A device pointer (or an opaque handle) as koffi passes it: an unsigned 64-bit address. */
export type Ptr = bigint;
/** Host memory koffi passes by address for the duration of one call. */
export type HostBuffer = ArrayBufferView;
/** int64 arrays (shapes, strides) go to C as BigInt64Array. */
export type I64Array = BigInt64Array;
export type I32Array = Int32Array;

export type BackendKind = 'cpu' | 'cuda';

/** Status codes of sgld.h. */
export const Status = {
  OK: 0, INVALID: 1, UNSUPPORTED: 2, NO_MEMORY: 3, DEVICE: 4, LIBRARY: 5, INTERNAL: 6,
} as const;

/** SGLD_COMM_ID_BYTES: size of an NCCL unique id, as sgld_comm_unique_id writes it. */
export const COMM_ID_BYTES = 128;

/** Storage types of sgld.h (SGLD_F32 ...). */
export const NativeDType = { F32: 0, F16: 1, BF16: 2, I32: 3, I64: 4, U8: 5 } as const;

/** SGLD_ACT_* */
export const Activation = { NONE: 0, GELU_TANH: 1, GELU_ERF: 2, SILU: 3, RELU: 4 } as const;
export type ActivationCode = (typeof Activation)[keyof typeof Activation];

/** SGLD_BIN_* */
export const BinaryOp = { ADD: 0, SUB: 1, MUL: 2, DIV: 3 } as const;
export type BinaryOpCode = (typeof BinaryOp)[keyof typeof BinaryOp];

type S = number; // sgld_status

/** The C functions, typed. Argument order and meaning are exactly the header's. */
export interface SgldFunctions {
  sgld_abi_version(): number;
  sgld_backend_name(): string;
  sgld_last_error(): string;
  sgld_device_count(count: [number | null]): S;

  sgld_context_create(device: number, numThreads: number, out: [Ptr | null]): S;
  sgld_context_destroy(ctx: Ptr): S;
  sgld_context_set_threads(ctx: Ptr, numThreads: number): S;
  sgld_synchronize(ctx: Ptr): S;

  sgld_malloc(ctx: Ptr, bytes: number, out: [Ptr | null]): S;
  sgld_free(ctx: Ptr, ptr: Ptr): S;
  sgld_memory_stats(ctx: Ptr, inUse: [bigint | number | null], cached: [bigint | number | null],
    peak: [bigint | number | null]): S;
  sgld_memory_release_cached(ctx: Ptr): S;
  sgld_host_alloc(ctx: Ptr, bytes: number, out: [Ptr | null]): S;
  sgld_host_free(ctx: Ptr, ptr: Ptr): S;
  sgld_copy_to_device(ctx: Ptr, dst: Ptr, hostSrc: HostBuffer | Ptr, bytes: number): S;
  sgld_copy_to_host(ctx: Ptr, hostDst: HostBuffer | Ptr, src: Ptr, bytes: number): S;
  sgld_copy_device(ctx: Ptr, dst: Ptr, src: Ptr, bytes: number): S;

  sgld_copy_strided(ctx: Ptr, ndim: number, shape: I64Array, srcDtype: number, src: Ptr, srcStrides: I64Array,
    dstDtype: number, dst: Ptr, dstStrides: I64Array): S;
  sgld_convert(ctx: Ptr, n: number, srcDtype: number, src: Ptr, dstDtype: number, dst: Ptr): S;
  sgld_fill(ctx: Ptr, dtype: number, n: number, dst: Ptr, value: number): S;

  sgld_gemm(ctx: Ptr, dtype: number, transA: number, transB: number, m: number, n: number, k: number,
    alpha: number, a: Ptr, lda: number, strideA: number, b: Ptr, ldb: number, strideB: number,
    beta: number, c: Ptr, ldc: number, strideC: number, batch: number, bias: Ptr | null, activation: number): S;

  sgld_attention(ctx: Ptr, dtype: number, batch: number, heads: number, qLen: number, kvLen: number,
    headDim: number, q: Ptr, qStrides: I64Array, k: Ptr, kStrides: I64Array, v: Ptr, vStrides: I64Array,
    out: Ptr, outStrides: I64Array, lse: Ptr | null, scale: number, bias: Ptr | null,
    biasStrides: I64Array | null, keyBias: Ptr | null, keyBiasSb: number): S;
  sgld_attention_merge(ctx: Ptr, dtype: number, batch: number, heads: number, seq: number, headDim: number,
    outAcc: Ptr, accStrides: I64Array, lseAcc: Ptr, outPart: Ptr, partStrides: I64Array, lsePart: Ptr): S;

  sgld_layer_norm(ctx: Ptr, dtype: number, rows: number, dim: number, x: Ptr, y: Ptr, weight: Ptr | null,
    bias: Ptr | null, eps: number): S;
  sgld_rms_norm(ctx: Ptr, dtype: number, rows: number, dim: number, x: Ptr, y: Ptr, weight: Ptr | null,
    eps: number): S;
  sgld_group_norm(ctx: Ptr, dtype: number, n: number, channels: number, spatial: number, groups: number,
    x: Ptr, y: Ptr, weight: Ptr | null, bias: Ptr | null, eps: number): S;
  sgld_channel_norm(ctx: Ptr, dtype: number, outer: number, channels: number, inner: number, x: Ptr, y: Ptr,
    gamma: Ptr | null, beta: Ptr | null, scale: number, eps: number): S;

  sgld_binary(ctx: Ptr, dtype: number, op: number, ndim: number, shape: I64Array, a: Ptr, aStrides: I64Array,
    b: Ptr, bStrides: I64Array, y: Ptr, yStrides: I64Array): S;
  sgld_activation(ctx: Ptr, dtype: number, activation: number, n: number, x: Ptr, y: Ptr): S;
  sgld_affine(ctx: Ptr, dtype: number, n: number, x: Ptr, y: Ptr, alpha: number, beta: number): S;
  sgld_gated_activation(ctx: Ptr, dtype: number, activation: number, rows: number, dim: number, gate: Ptr,
    up: Ptr, ldIn: number, y: Ptr): S;
  sgld_softmax(ctx: Ptr, dtype: number, rows: number, dim: number, x: Ptr, y: Ptr): S;
  sgld_modulate(ctx: Ptr, dtype: number, batch: number, seq: number, dim: number, x: Ptr, scale: Ptr,
    shift: Ptr, modSb: number, modSs: number, y: Ptr): S;
  sgld_gated_residual(ctx: Ptr, dtype: number, batch: number, seq: number, dim: number, residual: Ptr, y: Ptr,
    gate: Ptr, gateSb: number, gateSs: number): S;

  sgld_rope(ctx: Ptr, dtype: number, batch: number, seq: number, heads: number, headDim: number, x: Ptr,
    xStrides: I64Array, y: Ptr, yStrides: I64Array, cos: Ptr, sin: Ptr, interleaved: number): S;

  sgld_conv3d(ctx: Ptr, dtype: number, n: number, cIn: number, t: number, h: number, w: number, x: Ptr,
    cOut: number, kt: number, kh: number, kw: number, weight: Ptr, bias: Ptr | null, strides: I32Array,
    pads: I32Array, y: Ptr): S;
  sgld_conv2d(ctx: Ptr, dtype: number, n: number, cIn: number, h: number, w: number, x: Ptr, cOut: number,
    kh: number, kw: number, weight: Ptr, bias: Ptr | null, strides: I32Array, pads: I32Array, y: Ptr): S;
  sgld_upsample_nearest(ctx: Ptr, dtype: number, n: number, c: number, t: number, h: number, w: number,
    ft: number, fh: number, fw: number, x: Ptr, y: Ptr): S;

  sgld_comm_version(version: [number | null]): S;
  /** `out` is a COMM_ID_BYTES-byte Uint8Array that C fills in place. */
  sgld_comm_unique_id(out: Uint8Array): S;
  sgld_comm_init(ctx: Ptr, id: Uint8Array, nranks: number, rank: number, out: [Ptr | null]): S;
  sgld_comm_destroy(comm: Ptr | null): S;
  sgld_comm_abort(comm: Ptr | null): S;
  sgld_comm_group_start(): S;
  sgld_comm_group_end(): S;
  sgld_comm_send(comm: Ptr, ctx: Ptr, buf: Ptr, bytes: number, peer: number): S;
  sgld_comm_recv(comm: Ptr, ctx: Ptr, buf: Ptr, bytes: number, peer: number): S;
  sgld_comm_all_gather(comm: Ptr, ctx: Ptr, send: Ptr, recv: Ptr, bytes: number): S;
  sgld_comm_broadcast(comm: Ptr, ctx: Ptr, send: Ptr | null, recv: Ptr, bytes: number, root: number): S;
}

// koffi prototypes, mirroring sgld.h. Device pointers and handles are `void *` (BigInt addresses); host
// arrays of shapes/strides are typed pointers so koffi passes BigInt64Array/Int32Array without copying.
const PROTOTYPES: readonly string[] = [
  'int32_t sgld_abi_version(void)',
  'const char *sgld_backend_name(void)',
  'const char *sgld_last_error(void)',
  'int32_t sgld_device_count(_Out_ int32_t *count)',

  'int32_t sgld_context_create(int32_t device, int32_t num_threads, _Out_ void **out)',
  'int32_t sgld_context_destroy(void *ctx)',
  'int32_t sgld_context_set_threads(void *ctx, int32_t num_threads)',
  'int32_t sgld_synchronize(void *ctx)',

  'int32_t sgld_malloc(void *ctx, size_t bytes, _Out_ void **out)',
  'int32_t sgld_free(void *ctx, void *ptr)',
  'int32_t sgld_memory_stats(void *ctx, _Out_ uint64_t *in_use, _Out_ uint64_t *cached, _Out_ uint64_t *peak)',
  'int32_t sgld_memory_release_cached(void *ctx)',
  'int32_t sgld_host_alloc(void *ctx, size_t bytes, _Out_ void **out)',
  'int32_t sgld_host_free(void *ctx, void *ptr)',
  'int32_t sgld_copy_to_device(void *ctx, void *dst, const void *host_src, size_t bytes)',
  'int32_t sgld_copy_to_host(void *ctx, void *host_dst, const void *src, size_t bytes)',
  'int32_t sgld_copy_device(void *ctx, void *dst, const void *src, size_t bytes)',

  'int32_t sgld_copy_strided(void *ctx, int32_t ndim, const int64_t *shape, int32_t src_dtype, const void *src, const int64_t *src_strides, int32_t dst_dtype, void *dst, const int64_t *dst_strides)',
  'int32_t sgld_convert(void *ctx, int64_t n, int32_t src_dtype, const void *src, int32_t dst_dtype, void *dst)',
  'int32_t sgld_fill(void *ctx, int32_t dtype, int64_t n, void *dst, double value)',

  'int32_t sgld_gemm(void *ctx, int32_t dtype, int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, float alpha, const void *a, int64_t lda, int64_t stride_a, const void *b, int64_t ldb, int64_t stride_b, float beta, void *c, int64_t ldc, int64_t stride_c, int64_t batch, const void *bias, int32_t activation)',

  'int32_t sgld_attention(void *ctx, int32_t dtype, int64_t batch, int64_t heads, int64_t q_len, int64_t kv_len, int64_t head_dim, const void *q, const int64_t *q_strides, const void *k, const int64_t *k_strides, const void *v, const int64_t *v_strides, void *out, const int64_t *out_strides, void *lse, float scale, const void *bias, const int64_t *bias_strides, const void *key_bias, int64_t key_bias_sb)',
  'int32_t sgld_attention_merge(void *ctx, int32_t dtype, int64_t batch, int64_t heads, int64_t seq, int64_t head_dim, void *out_acc, const int64_t *acc_strides, void *lse_acc, const void *out_part, const int64_t *part_strides, const void *lse_part)',

  'int32_t sgld_layer_norm(void *ctx, int32_t dtype, int64_t rows, int64_t dim, const void *x, void *y, const void *weight, const void *bias, float eps)',
  'int32_t sgld_rms_norm(void *ctx, int32_t dtype, int64_t rows, int64_t dim, const void *x, void *y, const void *weight, float eps)',
  'int32_t sgld_group_norm(void *ctx, int32_t dtype, int64_t n, int64_t channels, int64_t spatial, int64_t groups, const void *x, void *y, const void *weight, const void *bias, float eps)',
  'int32_t sgld_channel_norm(void *ctx, int32_t dtype, int64_t outer, int64_t channels, int64_t inner, const void *x, void *y, const void *gamma, const void *beta, float scale, float eps)',

  'int32_t sgld_binary(void *ctx, int32_t dtype, int32_t op, int32_t ndim, const int64_t *shape, const void *a, const int64_t *a_strides, const void *b, const int64_t *b_strides, void *y, const int64_t *y_strides)',
  'int32_t sgld_activation(void *ctx, int32_t dtype, int32_t activation, int64_t n, const void *x, void *y)',
  'int32_t sgld_affine(void *ctx, int32_t dtype, int64_t n, const void *x, void *y, float alpha, float beta)',
  'int32_t sgld_gated_activation(void *ctx, int32_t dtype, int32_t activation, int64_t rows, int64_t dim, const void *gate, const void *up, int64_t ld_in, void *y)',
  'int32_t sgld_softmax(void *ctx, int32_t dtype, int64_t rows, int64_t dim, const void *x, void *y)',
  'int32_t sgld_modulate(void *ctx, int32_t dtype, int64_t batch, int64_t seq, int64_t dim, const void *x, const void *scale, const void *shift, int64_t mod_sb, int64_t mod_ss, void *y)',
  'int32_t sgld_gated_residual(void *ctx, int32_t dtype, int64_t batch, int64_t seq, int64_t dim, void *residual, const void *y, const void *gate, int64_t gate_sb, int64_t gate_ss)',

  'int32_t sgld_rope(void *ctx, int32_t dtype, int64_t batch, int64_t seq, int64_t heads, int64_t head_dim, const void *x, const int64_t *x_strides, void *y, const int64_t *y_strides, const void *cos, const void *sin, int32_t interleaved)',

  'int32_t sgld_conv3d(void *ctx, int32_t dtype, int64_t n, int64_t c_in, int64_t t, int64_t h, int64_t w, const void *x, int64_t c_out, int64_t kt, int64_t kh, int64_t kw, const void *weight, const void *bias, const int32_t *strides, const int32_t *pads, void *y)',
  'int32_t sgld_conv2d(void *ctx, int32_t dtype, int64_t n, int64_t c_in, int64_t h, int64_t w, const void *x, int64_t c_out, int64_t kh, int64_t kw, const void *weight, const void *bias, const int32_t *strides, const int32_t *pads, void *y)',
  'int32_t sgld_upsample_nearest(void *ctx, int32_t dtype, int64_t n, int64_t c, int64_t t, int64_t h, int64_t w, int32_t ft, int32_t fh, int32_t fw, const void *x, void *y)',

  'int32_t sgld_comm_version(_Out_ int32_t *version)',
  'int32_t sgld_comm_unique_id(uint8_t *out)',
  'int32_t sgld_comm_init(void *ctx, const uint8_t *id, int32_t nranks, int32_t rank, _Out_ void **out)',
  'int32_t sgld_comm_destroy(void *comm)',
  'int32_t sgld_comm_abort(void *comm)',
  'int32_t sgld_comm_group_start(void)',
  'int32_t sgld_comm_group_end(void)',
  'int32_t sgld_comm_send(void *comm, void *ctx, const void *buf, size_t bytes, int32_t peer)',
  'int32_t sgld_comm_recv(void *comm, void *ctx, void *buf, size_t bytes, int32_t peer)',
  'int32_t sgld_comm_all_gather(void *comm, void *ctx, const void *send, void *recv, size_t bytes)',
  'int32_t sgld_comm_broadcast(void *comm, void *ctx, const void *send, void *recv, size_t bytes, int32_t root)',
];

/** Names of the bound C functions, in header order (the binding test compares them with sgld.h). */
export const BOUND_FUNCTIONS: readonly string[] = PROTOTYPES.map((p) => /\b(sgld_\w+)\s*\(/.exec(p)![1]!);

/** A failed native call: the status code and sgld_last_error()'s message. */
export class NativeError extends Error {
  constructor(readonly status: number, readonly fn: string, message: string) {
    super(`${fn} failed (status ${status}): ${message || 'no message'}`);
    this.name = 'NativeError';
  }
}

export interface NativeLibrary {
  readonly backend: BackendKind;
  readonly path: string;
  readonly fns: SgldFunctions;
  /** Throws NativeError with the library's message unless status is OK. */
  check(status: number, fn: string): void;
}

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Where the built library of a backend lives: $SGLD_LIB_DIR, else `<package>/libs/`. */
export function nativeLibraryPath(backend: BackendKind): string {
  const dir = process.env.SGLD_LIB_DIR || join(repoRoot, 'libs');
  return join(dir, `libsgld_${backend}.so`);
}

const loaded = new Map<string, NativeLibrary>();

/**
 * Loads (once per thread) and binds the native library of a backend. koffi functions cannot cross threads,
 * so every worker calls this itself.
 */
export function loadNativeLibrary(backend: BackendKind = 'cpu', path = nativeLibraryPath(backend)): NativeLibrary {
  const cached = loaded.get(path);
  if (cached) return cached;
  if (!existsSync(path)) {
    const hint = backend === 'cpu' ? 'run `npm install` (or `npm run build:native`)' : 'run `npm run build:cuda` on a machine with nvcc';
    throw new Error(`sgld: native library ${path} not found; ${hint}`);
  }
  const lib = koffi.load(path);
  const fns = {} as Record<string, unknown>;
  for (let i = 0; i < PROTOTYPES.length; i++) fns[BOUND_FUNCTIONS[i]!] = lib.func(PROTOTYPES[i]!);
  const typed = fns as unknown as SgldFunctions;
  const abi = typed.sgld_abi_version();
  if (abi !== 1) throw new Error(`sgld: ${path} implements ABI ${abi}, this build expects 1; rebuild the native library`);
  const library: NativeLibrary = {
    backend,
    path,
    fns: typed,
    check(status: number, fn: string) {
      if (status !== Status.OK) throw new NativeError(status, fn, typed.sgld_last_error());
    },
  };
  loaded.set(path, library);
  return library;
}
