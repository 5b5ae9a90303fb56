// `sgld serve`: the HTTP server of spec section 10. It checks the flags (and `--config FILE`), starts the engine
// (model loading in its device thread) and the HTTP front at once, so /health answers and /ready says 503 until the
// model is loaded, prints where it listens, shows loading and generation progress on a terminal, and on SIGTERM /
// SIGINT stops accepting work, drains queued and running jobs up to --shutdown-timeout, writes the job index and
// exits 0 (a second signal exits at once).
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { Precision } from '../actors/api.js';
import type { EngineOptions } from '../actors/engine-options.js';
import { ParallelLayoutError, resolveParallelLayout } from '../actors/parallel-layout.js';
import { Supervisor } from '../actors/supervisor.js';
import { startHttpServer, type HttpServer, type HttpServerOptions } from '../http/server.js';
import { consoleLogger, type LogLevel, type Logger } from '../kernel/index.js';
import { loadNativeLibrary } from '../runtime/native.js';
import { type FlagValues, UsageError, flagKey, formatFlags, parseFlags } from './args.js';
import { ProgressBar } from './progress.js';
import { configFileArgs } from './serve-config.js';
import { PRECISIONS, SERVE_FLAGS, choice, ignoredFlags, serveHelp } from './serve-flags.js';

const USAGE = 'Usage: sgld serve [--model-path DIR] [options]';

/** What `--flag`s turn into. */
export interface ServeConfig {
  engine: EngineOptions;
  http: HttpServerOptions;
  logLevel: LogLevel;
  shutdownTimeoutMs: number;
  /** Given flags sgld accepts for SGLang compatibility but does not act on. */
  ignored: string[];
}

/** Parses and checks the command line (and its --config file); throws UsageError with a clear message. */
export function parseServeArgs(argv: readonly string[]): ServeConfig | 'help' {
  let { values, positional } = parseFlags(argv, SERVE_FLAGS);
  if (values.help) return 'help';
  if (typeof values.config === 'string') {
    const fromFile = configFileArgs(values.config);
    try {
      ({ values, positional } = parseFlags([...fromFile, ...argv], SERVE_FLAGS));
    } catch (e) {
      if (e instanceof UsageError) throw new UsageError(`${e.message} (in --config ${values.config} or on the command line)`);
      throw e;
    }
  }
  if (positional.length > 0) throw new UsageError(`unexpected argument "${positional[0]}" (options start with --)`);
  return serveConfig(values);
}

function serveConfig(v: FlagValues): ServeConfig {
  const str = (k: string): string | undefined => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  const num = (k: string): number | undefined => (typeof v[k] === 'number' ? (v[k] as number) : undefined);

  const modelPath = str('modelPath');
  if (modelPath !== undefined) checkModelPath(modelPath);
  const port = num('port')!;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be 0..65535, got ${port}`);
  const logLevel = ({ debug: 'debug', info: 'info', warning: 'warn', warn: 'warn', error: 'error' } as const)[
    choice(v, 'log-level', ['debug', 'info', 'warning', 'warn', 'error'] as const)!];
  choice(v, 'backend', ['auto', 'sglang', 'diffusers'] as const);
  const loraMergeMode = choice(v, 'lora-merge-mode', ['auto', 'merge', 'dynamic'] as const)!;
  if (loraMergeMode === 'dynamic') throw new UsageError('--lora-merge-mode dynamic is not supported: sgld merges adapters into the weights (use auto or merge)');
  const device = choice(v, 'device', ['auto', 'cpu', 'cuda'] as const)!;
  const shutdownTimeout = num('shutdownTimeout')!;
  if (!(shutdownTimeout >= 0)) throw new UsageError(`--shutdown-timeout must be >= 0 seconds, got ${shutdownTimeout}`);
  const maxQueued = num('maxQueuedRequests')!;
  // The engine counts a new job as queued before it can start, so 0 would refuse every job.
  if (!(maxQueued >= 1)) throw new UsageError(`--max-queued-requests must be >= 1, got ${maxQueued}`);
  const threads = num('threads')!;
  if (!(threads >= 0)) throw new UsageError(`--threads must be >= 0, got ${threads}`);
  const maxUploadMb = num('maxUploadMb')!;
  if (!(maxUploadMb > 0)) throw new UsageError(`--max-upload-mb must be positive, got ${maxUploadMb}`);
  const maxBodyMb = num('maxBodyMb')!;
  if (!(maxBodyMb > 0)) throw new UsageError(`--max-body-mb must be positive, got ${maxBodyMb}`);
  const limits = { maxPixels: positiveInt(v, 'max-pixels'), maxFrames: positiveInt(v, 'max-frames'), maxSteps: positiveInt(v, 'max-steps') };
  const seconds = (name: string): number => {
    const value = v[flagKey(name)] as number;
    if (!(value >= 0)) throw new UsageError(`--${name} must be >= 0 seconds, got ${value}`);
    return Math.round(value * 1000);
  };
  const loraDirs = (v.loraDir as string[] | undefined) ?? [];
  for (const dir of loraDirs) if (!existsSync(dir)) throw new UsageError(`--lora-dir ${dir} does not exist`);

  const parallel = {
    numGpus: num('numGpus'), tpSize: num('tpSize'), spDegree: num('spDegree'), ulyssesDegree: num('ulyssesDegree'),
    ringDegree: num('ringDegree'), enableCfgParallel: v.enableCfgParallel === true, cfgParallelSize: num('cfgParallelSize'),
    dpSize: num('dpSize'), attentionBackend: str('attentionBackend'),
  };
  let layout;
  try {
    layout = resolveParallelLayout(parallel);
  } catch (e) {
    if (e instanceof ParallelLayoutError) throw new UsageError(e.message);
    throw e;
  }
  const backend = pickBackend(device, layout.numGpus);

  const loraPath = str('loraPath');
  if (loraPath !== undefined && !existsSync(loraPath)) throw new UsageError(`--lora-path ${loraPath} does not exist`);
  const loraScale = num('loraScale')!;
  const loraAlpha = num('loraAlpha');
  if (loraAlpha !== undefined && !(loraAlpha > 0)) throw new UsageError(`--lora-alpha must be positive, got ${loraAlpha}`);

  const engine: EngineOptions = {
    ...Object.fromEntries(Object.entries(parallel).filter(([, x]) => x !== undefined)),
    ...(modelPath !== undefined ? { modelPath } : {}),
    ...(str('modelId') ? { modelId: str('modelId') } : {}),
    ...(str('servedModelName') ? { servedModelName: str('servedModelName') } : {}),
    outputPath: str('outputPath') || null, // "" disables persistence
    inputSavePath: str('inputSavePath') || null,
    backend,
    threads,
    maxQueuedRequests: maxQueued,
    limits,
    loraMergeMode,
    ...(seconds('job-timeout') > 0 ? { jobTimeoutMs: seconds('job-timeout') } : {}),
    ...faultInjectionFromEnv(),
    ...(choice(v, 'dit-precision', PRECISIONS) ? { ditPrecision: choice(v, 'dit-precision', PRECISIONS) as Precision } : {}),
    ...(choice(v, 'vae-precision', PRECISIONS) ? { vaePrecision: choice(v, 'vae-precision', PRECISIONS) as Precision } : {}),
    ...(loraPath !== undefined ? {
      startupLora: { path: loraPath, nickname: str('loraNickname') ?? 'default', scale: loraScale, ...(loraAlpha !== undefined ? { alpha: loraAlpha } : {}) },
    } : {}),
  };
  const http: HttpServerOptions = {
    host: str('host') ?? '127.0.0.1',
    port,
    ...(str('apiKey') ? { apiKey: str('apiKey') } : {}),
    ...(str('adminApiKey') ? { adminApiKey: str('adminApiKey') } : {}),
    maxUploadBytes: Math.round(maxUploadMb * 1024 * 1024),
    maxBodyBytes: Math.round(maxBodyMb * 1024 * 1024),
    bodyTimeoutMs: seconds('body-timeout'),
    requestTimeoutMs: seconds('request-timeout'),
    remoteInputs: v.allowRemoteInputs === true,
    allowPrivateUrls: v.allowPrivateInputUrls === true,
    remoteFetchTimeoutMs: seconds('remote-fetch-timeout'),
    // Requests may only name LoRA files inside these folders; none given: no file at all.
    loraRoots: loraDirs.map((d) => resolve(d)),
  };
  return { engine, http, logLevel, shutdownTimeoutMs: shutdownTimeout * 1000, ignored: ignoredFlags(v) };
}

function positiveInt(v: FlagValues, name: string): number {
  const value = v[flagKey(name)] as number;
  if (!Number.isInteger(value) || value < 1) throw new UsageError(`--${name} must be a positive integer, got ${value}`);
  return value;
}

/**
 * Test-only fault injection (EngineOptions.faultInjection) for tests that run `sgld serve` as a process:
 * SGLD_FAULT_INJECTION holds a JSON list of rules `{"prompt", "kind": "exit" | "throw", "atStep"?}`. A job whose
 * prompt equals a rule's makes its DeviceActor fail that way. Never set it in production.
 */
export function faultInjectionFromEnv(env: NodeJS.ProcessEnv = process.env): Pick<EngineOptions, 'faultInjection'> {
  const text = env.SGLD_FAULT_INJECTION;
  if (text === undefined || text === '') return {};
  let rules: unknown;
  try {
    rules = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`SGLD_FAULT_INJECTION is not valid JSON: ${(e as Error).message}`);
  }
  const valid = Array.isArray(rules) && rules.every((r: unknown) => {
    const rule = r as { prompt?: unknown; kind?: unknown; atStep?: unknown };
    return typeof rule?.prompt === 'string' && (rule.kind === 'exit' || rule.kind === 'throw')
      && (rule.atStep === undefined || (Number.isInteger(rule.atStep) && (rule.atStep as number) >= 1));
  });
  if (!valid) throw new UsageError('SGLD_FAULT_INJECTION must be a JSON list of {"prompt": string, "kind": "exit" | "throw", "atStep"?: positive integer}');
  return { faultInjection: rules as NonNullable<EngineOptions['faultInjection']> };
}

/** A local Diffusers folder is required; a hub id gets a message that says what to do instead. */
function checkModelPath(path: string): void {
  if (existsSync(path)) {
    if (!existsSync(resolve(path, 'model_index.json'))) throw new UsageError(`--model-path ${path} has no model_index.json; a Diffusers pipeline folder is expected`);
    return;
  }
  const hubId = !isAbsolute(path) && /^[\w.-]+\/[\w.-]+$/.test(path);
  throw new UsageError(hubId
    ? `--model-path ${path} looks like a Hugging Face repo id; sgld loads local folders only: download it first (e.g. \`huggingface-cli download ${path} --local-dir ./${path.split('/')[1]}\`) and pass that folder`
    : `--model-path ${path} does not exist`);
}

/** `auto` uses CUDA when the CUDA library is built and sees a GPU. */
function pickBackend(device: 'auto' | 'cpu' | 'cuda', numGpus: number): 'cpu' | 'cuda' {
  if (device === 'cpu') return 'cpu';
  const gpus = cudaDeviceCount();
  if (device === 'cuda' && gpus === 0) throw new UsageError('--device cuda: no GPU is visible (or libs/libsgld_cuda.so is not built)');
  if (gpus === 0) return 'cpu';
  if (numGpus > gpus) throw new UsageError(`--num-gpus ${numGpus} but only ${gpus} GPU${gpus === 1 ? ' is' : 's are'} visible`);
  return 'cuda';
}

function cudaDeviceCount(): number {
  try {
    const lib = loadNativeLibrary('cuda');
    const out: [number | null] = [null];
    return lib.fns.sgld_device_count(out) === 0 ? out[0] ?? 0 : 0;
  } catch {
    return 0; // not built, or no driver: the CPU backend serves
  }
}

/** A started server. */
export interface ServeHandle {
  engine: Supervisor;
  http: HttpServer;
  /** `http://host:port` as clients reach it. */
  url: string;
  config: ServeConfig;
  /** Drains (up to the shutdown timeout), persists and closes everything. */
  stop(): Promise<void>;
}

/**
 * Starts the engine and the HTTP front; resolves once both listen (the model may still be loading: see
 * `engine.ready()`). Throws UsageError for bad flags and Error when the model or port cannot be used.
 */
export async function startServe(config: ServeConfig, logger: Logger = consoleLogger(config.logLevel)): Promise<ServeHandle> {
  const engine = new Supervisor({ ...config.engine, logger });
  let http: HttpServer;
  try {
    http = await startHttpServer(engine, {
      ...config.http,
      logger: {
        debug: (m, f) => logger.debug(m, { component: 'http', ...f }),
        info: (m, f) => logger.info(m, { component: 'http', ...f }),
        warn: (m, f) => logger.warn(m, { component: 'http', ...f }),
        error: (m, f) => logger.error(m, { component: 'http', ...f }),
      },
    });
  } catch (e) {
    await engine.stop({ drainTimeoutMs: 0 });
    throw e;
  }
  const host = http.host === '' || http.host === '0.0.0.0' || http.host === '::' ? '127.0.0.1' : http.host.includes(':') ? `[${http.host}]` : http.host;
  const url = `http://${host}:${http.port}`;
  let stopping: Promise<void> | undefined;
  return {
    engine, http, url, config,
    stop: () => (stopping ??= (async () => {
      await engine.stop({ drainTimeoutMs: config.shutdownTimeoutMs });
      await http.close();
    })()),
  };
}

/** `sgld serve`: runs until SIGTERM / SIGINT; answers the exit code. */
export async function serveCommand(argv: readonly string[]): Promise<number> {
  const parsed = parseServeArgs(argv);
  if (parsed === 'help') {
    console.log(`${USAGE}\n\n${serveHelp(formatFlags)}`);
    return 0;
  }
  const bar = new ProgressBar(process.stderr);
  const logger = consoleLogger(parsed.logLevel);
  if (parsed.ignored.length > 0) logger.warn(`accepted for SGLang compatibility, no effect in sgld: ${parsed.ignored.join(' ')}`);
  if (parsed.engine.faultInjection) logger.warn('SGLD_FAULT_INJECTION is set: test-only device faults are armed', { rules: parsed.engine.faultInjection });
  let server: ServeHandle;
  try {
    server = await startServe(parsed, logger);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    console.error(`sgld serve: ${(e as Error).message}`);
    return 1;
  }
  const { engine, url } = server;
  const model = engine.model();
  bar.note(`serving ${model.id} (${model.pipelineClass}, ${model.taskType}) at ${url}  (OpenAI base URL: ${url}/v1)`);
  if (!parsed.engine.modelPath) bar.note('the embedded default model has random weights: its pictures are noise; pass --model-path for real ones');

  const stopSignal = waitForSignal(bar);
  const loaded = await waitForModel(engine, bar, stopSignal);
  if (loaded === 'failed') {
    console.error(`sgld serve: ${engine.failure?.message ?? 'the model failed to load'}`);
    await server.stop();
    return 1;
  }
  const unsubscribe = loaded === 'ready' ? showJobs(engine, bar, logger) : () => undefined;
  if (loaded === 'ready') bar.note(`ready: ${url}/ready answers 200`);
  await stopSignal;
  bar.note(`stopping: no new jobs; waiting up to ${parsed.shutdownTimeoutMs / 1000} s for queued and running ones`);
  await server.stop();
  unsubscribe();
  bar.note('stopped; the job index is written');
  return 0;
}

/** Resolves on the first SIGTERM / SIGINT; a second one exits at once. */
function waitForSignal(bar: ProgressBar): Promise<string> {
  return new Promise((resolve) => {
    const onSignal = (signal: string): void => {
      process.off('SIGTERM', onSignal).off('SIGINT', onSignal);
      process.once('SIGTERM', () => process.exit(143)).once('SIGINT', () => process.exit(130));
      bar.note(`${signal}: shutting down (send it again to exit at once)`);
      resolve(signal);
    };
    process.on('SIGTERM', onSignal).on('SIGINT', onSignal);
  });
}

/** Shows the loading time on a terminal until the model is ready (or failed, or a signal came). */
async function waitForModel(engine: Supervisor, bar: ProgressBar, stop: Promise<string>): Promise<'ready' | 'failed' | 'stopped'> {
  const t0 = performance.now();
  const tty = (process.stderr as { isTTY?: boolean }).isTTY === true;
  if (!tty) bar.note('loading the model ...');
  const ticker = tty ? setInterval(() => bar.update(`loading model ${((performance.now() - t0) / 1000).toFixed(0)} s`, 0, 1), 250) : undefined;
  try {
    const outcome = await Promise.race([
      engine.ready().then(() => 'ready' as const, () => 'failed' as const),
      stop.then(() => 'stopped' as const),
    ]);
    if (outcome === 'ready') bar.note(`model loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    return outcome;
  } finally {
    clearInterval(ticker);
  }
}

/**
 * A progress bar of the running job on a terminal, and one structured log line per job start and end (with its
 * job id; the HTTP access line of the request that submitted it carries the same job id next to the request id).
 */
function showJobs(engine: Supervisor, bar: ProgressBar, logger: Logger): () => void {
  const tty = (process.stderr as { isTTY?: boolean }).isTTY === true;
  const started = new Map<string, number>();
  return engine.subscribe((e) => {
    if (e.type === 'started') {
      started.set(e.id, e.at);
      logger.info('job started', { component: 'jobs', job_id: e.id, kind: e.kind });
    } else if (e.type === 'step' && tty) bar.update(`${e.kind} ${e.id.slice(0, 8)}`, e.step, e.total, e.eta ?? undefined);
    else if (e.type === 'completed' || e.type === 'failed') {
      const seconds = started.has(e.id) ? Number(((e.at - started.get(e.id)!) / 1000).toFixed(3)) : null;
      started.delete(e.id);
      if (tty) bar.done();
      if (e.type === 'completed') logger.info('job completed', { component: 'jobs', job_id: e.id, kind: e.kind, seconds });
      else logger.warn('job failed', { component: 'jobs', job_id: e.id, kind: e.kind, seconds, progress: e.progress, error_code: e.error.code, error: e.error.message });
    }
  });
}
