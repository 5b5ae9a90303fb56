/*
 * sgld.h — the whole C ABI of sgld's native compute library.
 *
 * Two implementations share it: libsgld_cpu.so (C++17, fp32 compute, threads inside each call) and
 * libsgld_cuda.so (CUDA, bf16 storage with fp32 accumulation). The TypeScript side binds this header once
 * (src/runtime/native.ts) and a test checks that every function below is bound there and nothing else.
 *
 * Conventions
 *   - Every function returns an sgld_status (0 = ok) and never throws across the boundary; the message of the
 *     last failure on the calling thread is sgld_last_error().
 *   - Tensors are raw pointers into the context's device memory. Shapes, strides and leading dimensions count
 *     ELEMENTS, not bytes; layouts are row-major unless a stride says otherwise. Optional pointers may be NULL.
 *   - Ops run on the context's stream (CUDA: asynchronously, in order; CPU: synchronously on the caller's thread
 *     plus the context's worker threads). Copies to the host synchronise.
 *   - `dtype` names the storage type of an op's activations; compute and accumulation are fp32 on both backends.
 *     The CPU backend computes in SGLD_F32 only (conversions accept every float type); an unsupported dtype is
 *     an error, not a silent conversion.
 *   - An op's parameters (GEMM bias, norm weights/biases, modulation and gate vectors, conv weights/biases)
 *     have the op's `dtype`; attention bias and key_bias, log-sum-exp and RoPE tables are always fp32.
 *   - Host-to-device copies from ordinary (pageable) memory may reuse the source as soon as the call returns;
 *     from sgld_host_alloc memory they may be asynchronous: keep the source until sgld_synchronize.
 */
#ifndef SGLD_H
#define SGLD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SGLD_ABI_VERSION 1

typedef int32_t sgld_status;
typedef struct sgld_context *sgld_context_t;

/* ---- status codes ---------------------------------------------------------------------------------------- */
enum {
    SGLD_OK              = 0,
    SGLD_ERR_INVALID     = 1, /* bad argument: null pointer, negative size, mismatched shapes */
    SGLD_ERR_UNSUPPORTED = 2, /* valid request this backend cannot do (dtype, head_dim, ...) */
    SGLD_ERR_NO_MEMORY   = 3, /* allocation failed (host or device) */
    SGLD_ERR_DEVICE      = 4, /* driver / runtime error (CUDA), or no device */
    SGLD_ERR_LIBRARY     = 5, /* a library loaded at run time (cuBLASLt, NCCL) is missing or failed */
    SGLD_ERR_INTERNAL    = 6
};

/* ---- data types ------------------------------------------------------------------------------------------ */
enum {
    SGLD_F32  = 0,
    SGLD_F16  = 1,
    SGLD_BF16 = 2,
    SGLD_I32  = 3,
    SGLD_I64  = 4,
    SGLD_U8   = 5
};

/* ---- library --------------------------------------------------------------------------------------------- */
int32_t      sgld_abi_version     (void);
const char  *sgld_backend_name    (void);                 /* "cpu" or "cuda" */
const char  *sgld_last_error      (void);                 /* thread-local; "" when none */
sgld_status  sgld_device_count    (int32_t *count);       /* cpu: 1 */

/* ---- contexts: one per rank (device + stream + worker threads + caching allocator) ----------------------- */
sgld_status  sgld_context_create  (int32_t device, int32_t num_threads, sgld_context_t *out);
sgld_status  sgld_context_destroy (sgld_context_t ctx);
sgld_status  sgld_context_set_threads(sgld_context_t ctx, int32_t num_threads);  /* cpu; cuda ignores */
sgld_status  sgld_synchronize     (sgld_context_t ctx);

/* ---- memory ---------------------------------------------------------------------------------------------- */
/* Device allocations come from the context's caching allocator: sgld_free returns a block to its cache, and
 * sgld_memory_release_cached gives cached blocks back to the system. Blocks are 256-byte aligned. */
sgld_status  sgld_malloc          (sgld_context_t ctx, size_t bytes, void **out);
sgld_status  sgld_free            (sgld_context_t ctx, void *ptr);
sgld_status  sgld_memory_stats    (sgld_context_t ctx, uint64_t *in_use_bytes, uint64_t *cached_bytes,
                                   uint64_t *peak_bytes);
sgld_status  sgld_memory_release_cached(sgld_context_t ctx);
/* Page-locked host memory for fast, asynchronous uploads (cpu: ordinary aligned memory). */
sgld_status  sgld_host_alloc      (sgld_context_t ctx, size_t bytes, void **out);
sgld_status  sgld_host_free       (sgld_context_t ctx, void *ptr);
sgld_status  sgld_copy_to_device  (sgld_context_t ctx, void *dst, const void *host_src, size_t bytes);
sgld_status  sgld_copy_to_host    (sgld_context_t ctx, void *host_dst, const void *src, size_t bytes);
sgld_status  sgld_copy_device     (sgld_context_t ctx, void *dst, const void *src, size_t bytes);

/* ---- layout: copy / permute / slice / concat / convert / fill --------------------------------------------- */
/* dst[i0..i5] = (dst_dtype) src[i0..i5] over `shape` (ndim <= 6), each side with its own strides. Permutes,
 * slices (offset pointers), concatenation (copy into an offset of dst) and dtype conversion are all this op.
 * Float types convert among themselves; integer types copy only to their own type (else UNSUPPORTED). */
sgld_status  sgld_copy_strided    (sgld_context_t ctx, int32_t ndim, const int64_t *shape,
                                   int32_t src_dtype, const void *src, const int64_t *src_strides,
                                   int32_t dst_dtype, void *dst, const int64_t *dst_strides);
/* Contiguous conversion between F32 / F16 / BF16 (round to nearest even). */
sgld_status  sgld_convert         (sgld_context_t ctx, int64_t n, int32_t src_dtype, const void *src,
                                   int32_t dst_dtype, void *dst);
/* Float dtypes round `value` through fp32 (as torch's fill_); integer dtypes truncate it and refuse values out of
 * their range or NaN (SGLD_ERR_INVALID). */
sgld_status  sgld_fill            (sgld_context_t ctx, int32_t dtype, int64_t n, void *dst, double value);

/* ---- GEMM ------------------------------------------------------------------------------------------------ */
/* Row-major, for each batch b < batch:
 *   C_b = act( alpha * op(A_b) @ op(B_b) + beta * C_b + bias )
 * op(A_b) is m x k (A stored k x m when trans_a), op(B_b) is k x n (B stored n x k when trans_b, as a
 * torch Linear weight is). X_b = X + b * stride_x; bias (length n, broadcast over rows) may be NULL;
 * with beta == 0, C is not read. A linear layer y = x W^T + b is trans_b = 1. */
enum {
    SGLD_ACT_NONE      = 0,
    SGLD_ACT_GELU_TANH = 1,
    SGLD_ACT_GELU_ERF  = 2,
    SGLD_ACT_SILU      = 3,
    SGLD_ACT_RELU      = 4
};
sgld_status  sgld_gemm            (sgld_context_t ctx, int32_t dtype, int32_t trans_a, int32_t trans_b,
                                   int64_t m, int64_t n, int64_t k, float alpha,
                                   const void *a, int64_t lda, int64_t stride_a,
                                   const void *b, int64_t ldb, int64_t stride_b,
                                   float beta, void *c, int64_t ldc, int64_t stride_c,
                                   int64_t batch, const void *bias, int32_t activation);

/* ---- attention ------------------------------------------------------------------------------------------- */
/* Multi-head scaled dot-product attention, flash style (memory O(seq x head_dim), no seq x seq matrix):
 *   out[b,i,h,:] = sum_j softmax_j( scale * q[b,i,h,:].k[b,j,h,:] + bias[b,h,i,j] + key_bias[b,j] ) v[b,j,h,:]
 *   lse[b,h,i]   = log sum_j exp( scale * q.k + bias + key_bias )          (natural log, fp32)
 * q/k/v/out address element (b, s, h, d) at b*s_b + s*s_s + h*s_h + d (head_dim contiguous). Query and key
 * lengths differ for cross-attention. `bias` (fp32, may be NULL) is read at b*bias_s[0] + h*bias_s[1] +
 * i*bias_s[2] + j*bias_s[3] (stride 0 broadcasts; strides may be negative, e.g. a Toeplitz view of T5's relative
 * bias); `key_bias` (fp32 [batch, kv_len] with row stride
 * key_bias_sb, may be NULL) masks padded keys with -inf. A row whose keys are all -inf gives out = 0 and
 * lse = -inf. `lse` (fp32 [batch, heads, q_len] contiguous) may be NULL. */
sgld_status  sgld_attention       (sgld_context_t ctx, int32_t dtype,
                                   int64_t batch, int64_t heads, int64_t q_len, int64_t kv_len, int64_t head_dim,
                                   const void *q, const int64_t *q_strides,     /* [3]: batch, seq, head */
                                   const void *k, const int64_t *k_strides,
                                   const void *v, const int64_t *v_strides,
                                   void *out, const int64_t *out_strides,
                                   float *lse, float scale,
                                   const float *bias, const int64_t *bias_strides, /* [4]: b, h, i, j */
                                   const float *key_bias, int64_t key_bias_sb);
/* Merges a partial attention result into an accumulator by log-sum-exp (ring attention):
 *   lse' = log(exp(lse_acc) + exp(lse_part)); out_acc = out_acc*exp(lse_acc-lse') + out_part*exp(lse_part-lse')
 * out_* are [batch, seq, heads, head_dim] with the given strides (as sgld_attention), lse_* [batch, heads, seq].
 * Where both lse are -inf (no key seen yet), out stays 0 and lse -inf. */
sgld_status  sgld_attention_merge (sgld_context_t ctx, int32_t dtype,
                                   int64_t batch, int64_t heads, int64_t seq, int64_t head_dim,
                                   void *out_acc, const int64_t *acc_strides, float *lse_acc,
                                   const void *out_part, const int64_t *part_strides, const float *lse_part);

/* ---- normalisation (fp32 statistics; y may alias x) ------------------------------------------------------ */
/* LayerNorm over the last dim of [rows, dim] (row stride = dim); weight/bias (length dim) may be NULL. */
sgld_status  sgld_layer_norm      (sgld_context_t ctx, int32_t dtype, int64_t rows, int64_t dim,
                                   const void *x, void *y, const void *weight, const void *bias, float eps);
/* RMSNorm over the last dim: y = x / sqrt(mean(x^2) + eps) * weight. Wan's q/k norm across heads is this op
 * with dim = heads * head_dim; T5's layer norm is this op. weight may be NULL. */
sgld_status  sgld_rms_norm        (sgld_context_t ctx, int32_t dtype, int64_t rows, int64_t dim,
                                   const void *x, void *y, const void *weight, float eps);
/* GroupNorm on [n, channels, spatial]: statistics per (n, group); weight/bias per channel, may be NULL. */
sgld_status  sgld_group_norm      (sgld_context_t ctx, int32_t dtype, int64_t n, int64_t channels,
                                   int64_t spatial, int64_t groups, const void *x, void *y,
                                   const void *weight, const void *bias, float eps);
/* L2 normalisation across channels of [outer, channels, inner] (Wan VAE's RMS_norm, channel-first):
 *   y = x / max(||x||_channels, eps) * scale * gamma[c] + beta[c]      (gamma/beta may be NULL) */
sgld_status  sgld_channel_norm    (sgld_context_t ctx, int32_t dtype, int64_t outer, int64_t channels,
                                   int64_t inner, const void *x, void *y, const void *gamma,
                                   const void *beta, float scale, float eps);

/* ---- elementwise ----------------------------------------------------------------------------------------- */
/* Broadcasting binary op over `shape` (ndim <= 6): y = a OP b, each operand with its own strides (0 to
 * broadcast). y may alias a or b when their strides equal y's. */
enum {
    SGLD_BIN_ADD = 0,
    SGLD_BIN_SUB = 1,
    SGLD_BIN_MUL = 2,
    SGLD_BIN_DIV = 3
};
sgld_status  sgld_binary          (sgld_context_t ctx, int32_t dtype, int32_t op, int32_t ndim,
                                   const int64_t *shape, const void *a, const int64_t *a_strides,
                                   const void *b, const int64_t *b_strides, void *y, const int64_t *y_strides);
/* y = act(x) elementwise over n contiguous values (y may alias x). */
sgld_status  sgld_activation      (sgld_context_t ctx, int32_t dtype, int32_t activation, int64_t n,
                                   const void *x, void *y);
/* y = alpha * x + beta elementwise (y may alias x). */
sgld_status  sgld_affine          (sgld_context_t ctx, int32_t dtype, int64_t n, const void *x, void *y,
                                   float alpha, float beta);
/* Gated activation of [rows, dim]: y[r,i] = act(gate[r,i]) * up[r,i]; gate/up rows are ld_in apart (so both
 * halves of one fused projection can be passed), y rows are dim apart. T5's gated-GELU, SwiGLU. */
sgld_status  sgld_gated_activation(sgld_context_t ctx, int32_t dtype, int32_t activation, int64_t rows,
                                   int64_t dim, const void *gate, const void *up, int64_t ld_in, void *y);
/* Softmax over the last dim of [rows, dim] (y may alias x). */
sgld_status  sgld_softmax         (sgld_context_t ctx, int32_t dtype, int64_t rows, int64_t dim,
                                   const void *x, void *y);
/* DiT modulation of x [batch, seq, dim]: y = x * (1 + scale) + shift, where scale/shift are read at
 * b*mod_sb + s*mod_ss + d (mod_ss = 0: one vector per batch item; mod_ss = dim: per token). y may alias x. */
sgld_status  sgld_modulate        (sgld_context_t ctx, int32_t dtype, int64_t batch, int64_t seq, int64_t dim,
                                   const void *x, const void *scale, const void *shift,
                                   int64_t mod_sb, int64_t mod_ss, void *y);
/* Gated residual on [batch, seq, dim]: residual += y * gate, gate read like sgld_modulate's scale. */
sgld_status  sgld_gated_residual  (sgld_context_t ctx, int32_t dtype, int64_t batch, int64_t seq, int64_t dim,
                                   void *residual, const void *y, const void *gate, int64_t gate_sb,
                                   int64_t gate_ss);

/* ---- rotary embedding ------------------------------------------------------------------------------------ */
/* Rotates x [batch, seq, heads, head_dim] (strides as sgld_attention) into y (may alias x) with fp32 tables
 * cos/sin [seq, head_dim/2] (row stride head_dim/2; a three-axis RoPE is built into the tables by the caller).
 * interleaved = 1: pairs (x[2i], x[2i+1]) rotate by angle i (Wan, Z-Image: complex multiplication);
 * interleaved = 0: pairs (x[i], x[i+half]) (rotate_half, as Llama/Qwen). */
sgld_status  sgld_rope            (sgld_context_t ctx, int32_t dtype, int64_t batch, int64_t seq, int64_t heads,
                                   int64_t head_dim, const void *x, const int64_t *x_strides, void *y,
                                   const int64_t *y_strides, const float *cos, const float *sin,
                                   int32_t interleaved);

/* ---- convolution and resampling -------------------------------------------------------------------------- */
/* 3-D convolution, groups 1, NCTHW contiguous: x [n, c_in, t, h, w], weight [c_out, c_in, kt, kh, kw], bias
 * [c_out] (may be NULL). pads[6] = {t_front, t_back, h_top, h_bottom, w_left, w_right} of zeros, so causal
 * temporal padding is {2*p, 0, ...} and asymmetric spatial padding is expressible. strides[3] = {st, sh, sw}.
 * Output [n, c_out, (t+pt0+pt1-kt)/st+1, (h+ph0+ph1-kh)/sh+1, (w+pw0+pw1-kw)/sw+1]. */
sgld_status  sgld_conv3d          (sgld_context_t ctx, int32_t dtype, int64_t n, int64_t c_in, int64_t t,
                                   int64_t h, int64_t w, const void *x, int64_t c_out, int64_t kt, int64_t kh,
                                   int64_t kw, const void *weight, const void *bias, const int32_t *strides,
                                   const int32_t *pads, void *y);
/* 2-D convolution, groups 1, NCHW: the t = kt = 1 case of sgld_conv3d. pads[4] = {top, bottom, left, right},
 * strides[2] = {sh, sw}. */
sgld_status  sgld_conv2d          (sgld_context_t ctx, int32_t dtype, int64_t n, int64_t c_in, int64_t h,
                                   int64_t w, const void *x, int64_t c_out, int64_t kh, int64_t kw,
                                   const void *weight, const void *bias, const int32_t *strides,
                                   const int32_t *pads, void *y);
/* Nearest-neighbour upsampling by integer factors of [n, c, t, h, w] (2-D: t = ft = 1). */
sgld_status  sgld_upsample_nearest(sgld_context_t ctx, int32_t dtype, int64_t n, int64_t c, int64_t t,
                                   int64_t h, int64_t w, int32_t ft, int32_t fh, int32_t fw,
                                   const void *x, void *y);

/* ---- collectives: NCCL communicators (CUDA) -------------------------------------------------------------- */
/* One communicator per process group, bound to the device of the context it was made with. Member 0 makes a
 * unique id and hands its SGLD_COMM_ID_BYTES bytes to the others (sgld passes them through the group's
 * SharedArrayBuffer); then every member calls sgld_comm_init with that id, nranks and its own rank. Init blocks
 * until all nranks members have called it, so members call it from different threads (or processes).
 * Transfers count BYTES of contiguous device memory of `ctx` and are queued on ctx's stream, in order with its
 * ops (NCCL kernels: asynchronous like any op; sgld_synchronize waits for them). send/recv issued between
 * sgld_comm_group_start and sgld_comm_group_end (on the calling thread) go out together, so a pairwise exchange
 * or an all-to-all cannot deadlock; a member may send to and receive from itself inside a group.
 * all_gather: recv holds nranks * bytes, member j's send lands at offset j * bytes (send may be that slice of
 * recv). broadcast: every member's recv <- root's send (send is read on root only and may equal recv).
 * Failures from NCCL are SGLD_ERR_LIBRARY (SGLD_ERR_INVALID when NCCL calls it misuse) with NCCL's message;
 * a missing libnccl.so.2 is SGLD_ERR_LIBRARY naming every place searched ($SGLD_NCCL_LIB: the library file
 * itself, then as for cuBLASLt: $SGLD_CUDA_LIB_DIRS, the loader's path, the toolkit, Python's nvidia wheels).
 * The CPU backend has no communicators (CPU ranks exchange through the shm collectives of src/parallel): its
 * sgld_comm_* functions return SGLD_ERR_UNSUPPORTED. Destroying or aborting NULL is a no-op on both. */
#define SGLD_COMM_ID_BYTES 128
typedef struct sgld_comm *sgld_comm_t;

sgld_status  sgld_comm_version    (int32_t *version);   /* NCCL's version code (e.g. 22703 for 2.27.3) */
sgld_status  sgld_comm_unique_id  (uint8_t *out);       /* out: SGLD_COMM_ID_BYTES bytes */
sgld_status  sgld_comm_init       (sgld_context_t ctx, const uint8_t *id, int32_t nranks, int32_t rank,
                                   sgld_comm_t *out);
/* Frees the communicator once its queued transfers are done. */
sgld_status  sgld_comm_destroy    (sgld_comm_t comm);
/* Frees it at once, cancelling transfers in flight (after a failure; peers' transfers may then fail). */
sgld_status  sgld_comm_abort      (sgld_comm_t comm);
sgld_status  sgld_comm_group_start(void);
sgld_status  sgld_comm_group_end  (void);
sgld_status  sgld_comm_send       (sgld_comm_t comm, sgld_context_t ctx, const void *buf, size_t bytes,
                                   int32_t peer);
sgld_status  sgld_comm_recv       (sgld_comm_t comm, sgld_context_t ctx, void *buf, size_t bytes, int32_t peer);
sgld_status  sgld_comm_all_gather (sgld_comm_t comm, sgld_context_t ctx, const void *send, void *recv,
                                   size_t bytes);
sgld_status  sgld_comm_broadcast  (sgld_comm_t comm, sgld_context_t ctx, const void *send, void *recv,
                                   size_t bytes, int32_t root);

#ifdef __cplusplus
}
#endif

#endif /* SGLD_H */
