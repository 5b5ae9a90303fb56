// The flags of `sgld serve`: spec section 10 (SGLang's ServerArgs, so SGLang command lines work verbatim), a few
// of sgld's own, and how they become engine and HTTP options. Flags SGLang has but sgld does not act on are
// accepted and named in one warning at startup.
import { DEFAULT_LIMITS } from '../actors/job-plan.js';
import { type FlagSpec, type FlagValues, UsageError, flagKey } from './args.js';

const PRECISIONS = ['bf16', 'fp16', 'fp32'] as const;

/** Flags that change what sgld does. */
const ACTIVE: Record<string, FlagSpec> = {
  // 10.1 model and server
  'model-path': { type: 'string', help: 'Diffusers folder (model_index.json); default: the embedded tiny model (random weights)' },
  'model-id': { type: 'string', help: 'model name when the folder name is not the one to serve' },
  'served-model-name': { type: 'string', help: 'id in /v1/models and in job records (default: model-id, else model-path)' },
  host: { type: 'string', default: '127.0.0.1', help: 'interface to listen on ("0.0.0.0" or "::" for every one)' },
  port: { type: 'int', default: 30000, help: 'HTTP port (0: any free port); a busy port is an error' },
  'api-key': { type: 'string', help: 'key every request except probes must carry (Authorization: Bearer, or x-api-key)' },
  'admin-api-key': { type: 'string', help: 'key of the LoRA mutators (set/merge/unmerge)' },
  'output-path': { type: 'string', default: 'outputs/', help: 'where outputs and the job index are written ("" disables persistence)' },
  'input-save-path': { type: 'string', default: 'inputs/uploads', help: 'where uploaded inputs are saved ("" disables)' },
  'log-level': { type: 'string', default: 'info', help: 'debug | info | warning | error' },
  backend: { type: 'string', default: 'auto', help: 'auto | sglang | diffusers (sgld always runs its native pipelines)' },
  'dit-precision': { type: 'string', help: 'bf16 | fp16 | fp32, reported in /models (default: fp32 on CPU, bf16 on CUDA)' },
  'vae-precision': { type: 'string', help: 'bf16 | fp16 | fp32, reported in /models (default fp32)' },
  config: { type: 'string', help: 'JSON or YAML file of these options (keys with underscores); the command line wins' },
  // 10.2 parallelism
  'num-gpus': { type: 'int', default: 1, help: 'ranks: GPUs with the CUDA backend, else CPU ranks (worker threads sharing --threads cores); layout by the flags below' },
  'tp-size': { type: 'int', help: 'tensor parallel size (default 1)' },
  'sp-degree': { type: 'int', help: 'sequence parallel size (default num-gpus / (dp x tp x cfg))' },
  'ulysses-degree': { type: 'int', help: 'Ulysses degree (default sp-degree when neither degree is given)' },
  'ring-degree': { type: 'int', help: 'ring attention degree (default 1)' },
  'enable-cfg-parallel': { type: 'bool', default: false, help: 'conditional and unconditional branches on different ranks' },
  'cfg-parallel-size': { type: 'int', help: '1 or 2; supersedes --enable-cfg-parallel' },
  'dp-size': { type: 'int', aliases: ['data-parallel-size', 'dp'], help: 'replicas (default 1)' },
  'attention-backend': { type: 'string', help: 'fa (fa3, fa4), torch_sdpa, sage_attn, ...; ring attention needs fa or sage_attn' },
  // 10.5 LoRA
  'lora-path': { type: 'string', help: 'LoRA (.safetensors) merged at startup into every module' },
  'lora-nickname': { type: 'string', default: 'default', help: 'its nickname' },
  'lora-scale': { type: 'float', default: 1.0, help: 'its strength' },
  'lora-merge-mode': { type: 'string', default: 'auto', help: 'auto | merge | dynamic (sgld merges; dynamic is refused)' },
  'lora-alpha': { type: 'int', help: 'alpha for adapters whose file has none' },
  // sgld
  'max-queued-requests': { type: 'int', default: 64, help: 'jobs that may wait before submissions get 429' },
  'shutdown-timeout': { type: 'float', default: 30, help: 'seconds SIGTERM waits for queued and running jobs before it stops' },
  device: { type: 'string', default: 'auto', help: 'auto | cpu | cuda (auto: cuda when a GPU is visible)' },
  threads: { type: 'int', default: 0, help: 'CPU threads for the device work, shared by all CPU ranks (0: all cores)' },
  'max-upload-mb': { type: 'float', default: 50, help: 'largest uploaded or downloaded input image, MiB (413 beyond)' },
  'max-body-mb': { type: 'float', default: 100, help: 'largest request body, MiB (413 beyond)' },
  'max-pixels': { type: 'int', default: DEFAULT_LIMITS.maxPixels, help: 'largest width x height of an output (400 limit_exceeded beyond)' },
  'max-frames': { type: 'int', default: DEFAULT_LIMITS.maxFrames, help: 'largest frame count of a video (400 limit_exceeded beyond)' },
  'max-steps': { type: 'int', default: DEFAULT_LIMITS.maxSteps, help: 'largest num_inference_steps (400 limit_exceeded beyond)' },
  'body-timeout': { type: 'float', default: 60, help: 'seconds a client has to send its request body (408 beyond)' },
  'job-timeout': { type: 'float', default: 0, help: 'seconds a job may run on the device; then it stops between steps and fails with job_timeout (0: no limit)' },
  'request-timeout': { type: 'float', default: 0, help: 'seconds an image request may wait for its job, queue included; then the job is cancelled and the answer is 504 (0: no limit)' },
  'allow-remote-inputs': { type: 'bool', default: true, help: 'fetch http(s) image URLs of edits and references' },
  'allow-private-input-urls': { type: 'bool', default: false, help: 'let image URLs reach loopback, private and link-local addresses (refused by default)' },
  'remote-fetch-timeout': { type: 'float', default: 10, help: 'seconds one image URL download attempt may take' },
  'lora-dir': { type: 'list', help: 'folders lora_path of /v1/set_lora may name (default: none, so requests can only set cached adapters)' },
  help: { type: 'bool', default: false, help: 'show this help' },
};

/** SGLang flags accepted for compatibility; sgld has no use for them (yet). */
const ACCEPTED: Record<string, FlagSpec> = {
  'strict-ports': { type: 'bool', help: 'sgld never moves to another port' },
  'warmup-mode': { type: 'string', help: 'off | request | server' },
  warmup: { type: 'bool', help: 'older SGLang warmup switch' },
  'warmup-resolutions': { type: 'list', help: 'WxH sizes to warm up' },
  'warmup-steps': { type: 'int', help: 'warmup steps' },
  'enable-torch-compile': { type: 'bool', help: 'torch.compile' },
  'scheduler-port': { type: 'int', help: 'internal port' },
  'master-port': { type: 'int', help: 'internal rendezvous port' },
  'nccl-port': { type: 'int', help: 'internal NCCL port' },
  webui: { type: 'bool', help: 'web UI' },
  'webui-port': { type: 'int', help: 'web UI port' },
  'text-encoder-cpu-offload': { type: 'bool', help: 'offload' },
  'image-encoder-cpu-offload': { type: 'bool', help: 'offload' },
  'vae-cpu-offload': { type: 'bool', help: 'offload' },
  'dit-cpu-offload': { type: 'bool', help: 'offload' },
  'dit-layerwise-offload': { type: 'bool', help: 'offload' },
  'dit-offload-prefetch-size': { type: 'float', help: 'offload prefetch' },
  'use-fsdp-inference': { type: 'bool', help: 'FSDP' },
  'pin-cpu-memory': { type: 'bool', help: 'pinned host memory' },
  'performance-mode': { type: 'string', aliases: ['mode'], help: 'manual | auto | speed | memory' },
  'attention-backend-config': { type: 'string', help: 'attention backend options' },
  'diffusers-attention-backend': { type: 'string', help: 'diffusers backend attention' },
  'cache-dit-config': { type: 'string', help: 'cache-dit' },
  'vae-tiling': { type: 'bool', help: 'VAE tiling' },
  'vae-sp': { type: 'bool', help: 'VAE sequence parallel' },
  'vae-path': { type: 'string', help: 'custom VAE' },
  'trust-remote-code': { type: 'bool', help: 'HF remote code' },
  revision: { type: 'string', help: 'HF revision' },
  'hsdp-replicate-dim': { type: 'int', help: 'HSDP' },
  'hsdp-shard-dim': { type: 'int', help: 'HSDP' },
  'dp-degree': { type: 'int', help: 'GPUs per DP group' },
  'dist-timeout': { type: 'int', help: 'distributed timeout' },
  'prompt-file-path': { type: 'string', help: 'batch prompts' },
  'mask-strategy-file-path': { type: 'string', help: 'STA masks' },
  'disable-autocast': { type: 'bool', help: 'autocast' },
  'pipeline-class-name': { type: 'string', help: 'pipeline override' },
  'lora-target-modules': { type: 'list', help: 'LoRA target layers' },
  'comfyui-mode': { type: 'bool', help: 'ComfyUI' },
  'boundary-ratio': { type: 'float', help: 'Wan2.2 MoE boundary' },
  'flow-shift': { type: 'float', help: 'scheduler shift (the checkpoint\'s scheduler config is used)' },
  'text-encoder-precisions': { type: 'list', help: 'text encoder precisions' },
  'embedded-cfg-scale': { type: 'float', help: 'embedded guidance' },
  'workload-type': { type: 'string', help: 'i2v | t2v | t2i | i2i' },
};

export const SERVE_FLAGS: Record<string, FlagSpec> = { ...ACTIVE, ...ACCEPTED };

/** The help text: what acts, then what is only accepted. */
export const serveHelp = (format: (specs: Record<string, FlagSpec>) => string): string =>
  `${format(ACTIVE)}\n\nAccepted for SGLang compatibility, no effect in sgld:\n${format(ACCEPTED)}`;

/** The given flags that sgld accepts but ignores, as `--name`. */
export function ignoredFlags(values: FlagValues): string[] {
  return Object.keys(ACCEPTED).filter((name) => values[flagKey(name)] !== undefined).map((name) => `--${name}`);
}

/** A flag's value, which must be one of `choices` (case-insensitive); lower-cased. */
export function choice<T extends string>(values: FlagValues, name: string, choices: readonly T[]): T | undefined {
  const v = values[flagKey(name)];
  if (v === undefined) return undefined;
  const lower = String(v).toLowerCase();
  if (!(choices as readonly string[]).includes(lower)) throw new UsageError(`--${name} must be one of ${choices.join(', ')}; got "${v}"`);
  return lower as T;
}

export { PRECISIONS };
