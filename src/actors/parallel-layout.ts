// The parallel layout of spec 10.2: num_gpus = dp x tp x cfg x sp, sp = ulysses x ring, resolved and checked as
// SGLang's ServerArgs does (_adjust_parallelism, _validate_parallelism, _validate_cfg_parallel), with messages that
// say which flags disagree and how.

export interface ParallelFlags {
  numGpus?: number;
  tpSize?: number;
  spDegree?: number;
  ulyssesDegree?: number;
  ringDegree?: number;
  enableCfgParallel?: boolean;
  cfgParallelSize?: number;
  dpSize?: number;
  attentionBackend?: string;
}

export interface ParallelLayout {
  numGpus: number;
  tp: number;
  dp: number;
  /** 2 when the conditional and unconditional branches run on different ranks, else 1. */
  cfg: number;
  sp: number;
  ulysses: number;
  ring: number;
}

export class ParallelLayoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ParallelLayoutError';
  }
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1) throw new ParallelLayoutError(`--${name} must be a positive integer, got ${v}`);
  return v;
}

/** Ring attention runs on these attention backends only (SGLang); `fa3` / `fa4` are aliases of `fa`. */
const RING_BACKENDS = new Set(['fa', 'fa3', 'fa4', 'sage_attn']);

export function resolveParallelLayout(flags: ParallelFlags): ParallelLayout {
  const numGpus = positive('num-gpus', flags.numGpus, 1);
  const tp = positive('tp-size', flags.tpSize, 1);
  const dp = positive('dp-size', flags.dpSize, 1);
  let cfg = flags.enableCfgParallel ? 2 : 1;
  if (flags.cfgParallelSize !== undefined) {
    cfg = positive('cfg-parallel-size', flags.cfgParallelSize, 1);
    if (cfg > 2) throw new ParallelLayoutError(`--cfg-parallel-size must be 1 or 2 (one rank per CFG branch), got ${cfg}`);
  }
  if (cfg > 1 && numGpus === 1) {
    throw new ParallelLayoutError('CFG parallelism (--enable-cfg-parallel / --cfg-parallel-size 2) needs --num-gpus of at least 2');
  }
  const perGroup = dp * tp * cfg;
  if (numGpus % perGroup !== 0) {
    throw new ParallelLayoutError(`--num-gpus ${numGpus} must be divisible by dp-size x tp-size${cfg > 1 ? ' x 2 (CFG parallel)' : ''} = ${perGroup}`);
  }
  const sp = positive('sp-degree', flags.spDegree, numGpus / perGroup);
  if (sp > numGpus || numGpus % sp !== 0) {
    throw new ParallelLayoutError(`--num-gpus ${numGpus} must be at least and divisible by --sp-degree ${sp}`);
  }
  // Neither degree given: all of sp goes to Ulysses (SGLang: best performance).
  const neither = flags.ulyssesDegree === undefined && flags.ringDegree === undefined;
  const ulysses = positive('ulysses-degree', flags.ulyssesDegree, neither ? sp : 1);
  const ring = positive('ring-degree', flags.ringDegree, 1);
  if (sp !== ulysses * ring) {
    throw new ParallelLayoutError(`--sp-degree ${sp} must equal --ulysses-degree x --ring-degree (${ulysses} x ${ring} = ${ulysses * ring})`
      + (flags.spDegree === undefined ? `; sp-degree defaults to num-gpus / (dp x tp x cfg) = ${numGpus} / ${perGroup}` : ''));
  }
  if (dp * tp * cfg * sp !== numGpus) {
    throw new ParallelLayoutError(`dp-size x tp-size x cfg x sp-degree = ${dp} x ${tp} x ${cfg} x ${sp} must equal --num-gpus ${numGpus}`);
  }
  if (ring > 1 && flags.attentionBackend !== undefined && !RING_BACKENDS.has(flags.attentionBackend)) {
    throw new ParallelLayoutError(`ring attention (--ring-degree ${ring}) needs --attention-backend fa or sage_attn, got ${flags.attentionBackend}`);
  }
  return { numGpus, tp, dp, cfg, sp, ulysses, ring };
}

/** `dp 1 x tp 1 x cfg 1 x ulysses 2 x ring 2` */
export const describeLayout = (l: ParallelLayout): string =>
  `dp ${l.dp} x tp ${l.tp} x cfg ${l.cfg} x ulysses ${l.ulysses} x ring ${l.ring}`;

/**
 * What sgld can serve of a valid layout: no tensor parallelism at all, and sequence / CFG parallel ranks only for
 * families whose pipeline shards (Wan); replicas (dp) work for every family.
 */
export function checkServableLayout(l: ParallelLayout, family: 'wan' | 'zimage'): void {
  if (l.tp > 1) {
    throw new ParallelLayoutError(`--tp-size ${l.tp}: sgld has no tensor parallelism; use --dp-size (replicas), --ulysses-degree / --ring-degree `
      + '(sequence parallel) or --enable-cfg-parallel instead');
  }
  if (family === 'zimage' && (l.sp > 1 || l.cfg > 1)) {
    const flags = [l.ulysses > 1 ? `--ulysses-degree ${l.ulysses}` : '', l.ring > 1 ? `--ring-degree ${l.ring}` : '', l.cfg > 1 ? 'CFG parallel (--enable-cfg-parallel / --cfg-parallel-size 2)' : '']
      .filter(Boolean).join(', ');
    throw new ParallelLayoutError(`Z-Image has no sequence or CFG parallelism (${flags} given, sp-degree ${l.sp}); `
      + `serve it with replicas of one rank: --num-gpus ${l.numGpus} --dp-size ${l.numGpus}`);
  }
}
