// What the engine decides before any thread starts: model profiles and defaults (spec 5.2), size and frame rules,
// the parallel layout checks of spec 10.2, the job store's index (atomic, restart-safe, ids checked), and the
// `sgld serve` flags with --config files (spec 10). No worker threads here.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { JobRecord } from '../../src/actors/api.js';
import { EMBEDDED_MODEL_DIR } from '../../src/actors/engine-options.js';
import { checkSize, modelFrames, outputSeeds } from '../../src/actors/job-plan.js';
import { INDEX_FILE, JobStore, isJobId } from '../../src/actors/job-store.js';
import { readModelProfile } from '../../src/actors/model-profile.js';
import { checkServableLayout, resolveParallelLayout } from '../../src/actors/parallel-layout.js';
import { UsageError } from '../../src/cli/args.js';
import { parseYamlConfig } from '../../src/cli/serve-config.js';
import { type ServeConfig, parseServeArgs } from '../../src/cli/serve.js';
import { fixtureRoot } from '../helpers/goldens.js';

const dir = mkdtempSync(join(tmpdir(), 'sgld-engine-config-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('model profiles: the embedded Wan model and the Z-Image fixture', async (t) => {
  const wan = readModelProfile(EMBEDDED_MODEL_DIR);
  t.match(wan, { family: 'wan', taskType: 'T2V', alignment: 16, temporal: 4, video: true, allowedSizes: null, loraFamily: 'wan' });
  t.match(wan.defaults, { width: 64, height: 64, numFrames: 9, numInferenceSteps: 8, guidanceScale: 5, strength: 0.8 });
  const zimageDir = join(fixtureRoot(), 'zimage-tiny', 'model');
  if (existsSync(zimageDir)) {
    const z = readModelProfile(zimageDir);
    t.match(z, { family: 'zimage', taskType: 'T2I', alignment: 16, temporal: 1, video: false, loraFamily: 'zimage' });
    t.match(z.defaults, { numFrames: 1, numInferenceSteps: 9, guidanceScale: 0, negativePrompt: null, strength: 0.6 });
  }
  t.throws(() => readModelProfile(join(dir, 'nowhere')), /cannot read .*model_index\.json/);
});

t.test('Wan2.1-1.3B is recognised from its config: 832x480, 50 steps, guidance 3, a fixed size list', async (t) => {
  // A config-only copy of the embedded folder with the 1.3B transformer shape (30 layers x 12 heads x 128).
  const fake = join(dir, 'wan-1.3b');
  for (const sub of ['transformer', 'vae']) {
    const json = JSON.parse(readFileSync(join(EMBEDDED_MODEL_DIR, sub, 'config.json'), 'utf8')) as Record<string, unknown>;
    if (sub === 'transformer') Object.assign(json, { num_layers: 30, num_attention_heads: 12, attention_head_dim: 128 });
    mkdirSync(join(fake, sub), { recursive: true });
    writeFileSync(join(fake, sub, 'config.json'), JSON.stringify(json));
  }
  writeFileSync(join(fake, 'model_index.json'), readFileSync(join(EMBEDDED_MODEL_DIR, 'model_index.json')));
  const p = readModelProfile(fake);
  t.match(p.defaults, { width: 832, height: 480, numFrames: 81, fps: 16, numInferenceSteps: 50, guidanceScale: 3 });
  t.same(p.allowedSizes, [[832, 480], [480, 832]]);
  const limits = { maxPixels: 4096 * 4096, maxFrames: 1025, maxSteps: 1000 };
  t.doesNotThrow(() => checkSize(p, 480, 832, limits));
  t.throws(() => checkSize(p, 512, 512, limits), { name: 'ApiError', status: 400, param: 'size', message: /allowed sizes: 832x480, 480x832/ });
});

t.test('size and frame rules', async (t) => {
  const p = readModelProfile(EMBEDDED_MODEL_DIR);
  const limits = { maxPixels: 256 * 256, maxFrames: 33, maxSteps: 10 };
  t.throws(() => checkSize(p, 72, 64, limits), { name: 'ApiError', status: 400, code: 'unsupported_size', message: /multiples of 16/ });
  t.throws(() => checkSize(p, 512, 512, limits), { name: 'ApiError', status: 400, code: 'limit_exceeded' });
  t.throws(() => checkSize(p, 0, 64, limits), { name: 'ApiError', status: 400, code: 'invalid_size' });
  t.same([1, 5, 8, 9, 10, 96, 97].map((n) => modelFrames(p, n)), [1, 5, 9, 9, 9, 97, 97], 'Wan: 4k+1, as diffusers rounds');
  t.same(outputSeeds(1024, 3), [1024, 1025, 1026]);
  t.same(outputSeeds([5, 9], 2), [5, 9]);
});

t.test('parallel layouts of spec 10.2', async (t) => {
  t.match(resolveParallelLayout({}), { numGpus: 1, dp: 1, tp: 1, cfg: 1, sp: 1, ulysses: 1, ring: 1 });
  t.match(resolveParallelLayout({ numGpus: 4, ulyssesDegree: 2, ringDegree: 2 }), { sp: 4, ulysses: 2, ring: 2 }, "the seed's layout");
  t.match(resolveParallelLayout({ numGpus: 4 }), { sp: 4, ulysses: 4, ring: 1 }, 'sp goes to Ulysses when no degree is given');
  t.match(resolveParallelLayout({ numGpus: 4, enableCfgParallel: true }), { cfg: 2, sp: 2, ulysses: 2 });
  t.match(resolveParallelLayout({ numGpus: 2, dpSize: 2 }), { dp: 2, sp: 1 });
  const bad: [object, RegExp][] = [
    [{ numGpus: 1, enableCfgParallel: true }, /CFG parallelism .* at least 2/],
    [{ numGpus: 3, enableCfgParallel: true }, /divisible by .* = 2/],
    [{ numGpus: 4, ulyssesDegree: 2 }, /sp-degree 4 must equal --ulysses-degree x --ring-degree \(2 x 1 = 2\)/],
    [{ numGpus: 4, ulyssesDegree: 2, ringDegree: 2, attentionBackend: 'torch_sdpa' }, /needs --attention-backend fa or sage_attn/],
    [{ numGpus: 4, spDegree: 3 }, /divisible by --sp-degree 3/],
    [{ numGpus: 0 }, /--num-gpus must be a positive integer/],
    [{ numGpus: 2, cfgParallelSize: 3 }, /1 or 2/],
  ];
  for (const [flags, message] of bad) t.throws(() => resolveParallelLayout(flags), { name: 'ParallelLayoutError', message }, JSON.stringify(flags));
  t.match(resolveParallelLayout({ numGpus: 4, ringDegree: 4, attentionBackend: 'fa3' }), { ring: 4 }, 'fa3 is an alias of fa');
});

t.test('layouts sgld serves: no tensor parallelism; Z-Image only as replicas of one rank', async (t) => {
  const layout = (flags: object) => resolveParallelLayout(flags);
  t.doesNotThrow(() => checkServableLayout(layout({ numGpus: 4, ulyssesDegree: 2, ringDegree: 2 }), 'wan'), "Wan: the seed's layout");
  t.doesNotThrow(() => checkServableLayout(layout({ numGpus: 4, enableCfgParallel: true, dpSize: 2 }), 'wan'), 'Wan: cfg x dp');
  t.doesNotThrow(() => checkServableLayout(layout({ numGpus: 2, dpSize: 2 }), 'zimage'), 'Z-Image: 2 replicas');
  t.throws(() => checkServableLayout(layout({ numGpus: 2, tpSize: 2 }), 'wan'), { name: 'ParallelLayoutError', message: /--tp-size 2: sgld has no tensor parallelism/ });
  t.throws(() => checkServableLayout(layout({ numGpus: 4, ulyssesDegree: 2, ringDegree: 2 }), 'zimage'),
    { message: /Z-Image has no sequence or CFG parallelism \(--ulysses-degree 2, --ring-degree 2 given.*--num-gpus 4 --dp-size 4/ });
  t.throws(() => checkServableLayout(layout({ numGpus: 2, enableCfgParallel: true }), 'zimage'), { message: /CFG parallel \(--enable-cfg-parallel/ });
});

const record = (id: string, over: Partial<JobRecord> = {}): JobRecord => ({
  id, kind: 'video', model: 'm', prompt: 'p', status: 'queued', progress: 0, createdAt: 100, startedAt: null, completedAt: null,
  size: '64x64', numFrames: 9, fps: 8, seconds: '1', n: 1, format: 'mp4', persisted: true, outputs: [], error: null,
  peakMemoryMb: null, inferenceTimeS: null, ...over,
});
const ids = Array.from({ length: 5 }, (_, i) => `0000000${i}-1111-4222-8333-444444444444`);

t.test('the job store: an atomic index that survives a restart, interrupted jobs marked, ids checked', async (t) => {
  const out = join(dir, 'store');
  const { store } = JobStore.open(out);
  store.add(record(ids[0]!, { status: 'completed', progress: 100 }));
  store.add(record(ids[1]!, { status: 'in_progress', progress: 40 }));
  store.add(record(ids[2]!));
  store.add(record(ids[3]!, { kind: 'image', status: 'completed', progress: 100 }));
  store.update(ids[2]!, (j) => { j.prompt = 'changed'; });
  await store.flush();
  t.same(readdirSync(out), [INDEX_FILE], 'only the index: the temp file was renamed over it');
  t.equal(store.get('../../etc/passwd'), undefined, 'a path is not an id');
  t.notOk(isJobId('0000000Z-1111-4222-8333-444444444444'));
  t.throws(() => store.outputFile('../x', 0, 1, 'png'), /not a job id/);
  t.equal(store.outputFile(ids[0]!, 1, 2, 'jpg'), join(out, `${ids[0]}_1.jpg`));

  const { store: again, report } = JobStore.open(out);
  t.same(report, { loaded: 4, interrupted: [ids[1], ids[2]] });
  t.match(again.get(ids[1]!), { status: 'failed', progress: 40, error: { code: 'server_restarted' } }, 'running: failed, progress kept');
  t.match(again.get(ids[2]!), { status: 'failed', prompt: 'changed', error: { code: 'server_restarted' } }, 'queued too');
  t.match(again.get(ids[0]!), { status: 'completed' });
  const page = again.list({ kind: 'video', limit: 2, order: 'asc' });
  t.same([page.data.map((j) => j.id), page.hasMore], [[ids[0], ids[1]], true]);
  t.same(again.list({ kind: 'video', limit: 2, order: 'asc', after: ids[1] }).data.map((j) => j.id), [ids[2]]);
  t.same(again.list({ kind: 'video', limit: 2, order: 'asc', after: ids[4] }), { data: [], hasMore: false }, 'unknown cursor: empty page');
  t.same(again.countByStatus(), { queued: 0, in_progress: 0, completed: 2, failed: 2 }, 'images are counted with the rest');

  const outside = join(dir, 'outside.txt');
  writeFileSync(outside, 'x');
  await again.deleteFile(join(out, '..', 'outside.txt'));
  t.ok(existsSync(outside), 'a path out of the output directory is never deleted');
  writeFileSync(join(out, 'inside.png'), 'x');
  await again.deleteFile(join(out, 'inside.png'));
  t.notOk(existsSync(join(out, 'inside.png')), 'one inside is');
  writeFileSync(join(out, INDEX_FILE), '{"version": 1, "jobs": [');
  t.throws(() => JobStore.open(out), /not valid JSON.*move it away/);
});

t.test('serve flags: SGLang command lines, defaults, --config JSON and YAML, startup checks', async (t) => {
  const parse = (argv: string[]): ServeConfig => parseServeArgs(argv) as ServeConfig;
  const seed = parse(['--num-gpus', '4', '--ulysses-degree=2', '--ring-degree=2', '--port', '30010', '--device', 'cpu']);
  t.match(seed.engine, { numGpus: 4, ulyssesDegree: 2, ringDegree: 2, backend: 'cpu', maxQueuedRequests: 64, outputPath: 'outputs/' });
  t.match(seed.http, { host: '127.0.0.1', port: 30010, remoteInputs: true });
  t.equal(seed.shutdownTimeoutMs, 30_000);
  t.equal(parseServeArgs(['--help']), 'help');

  const compat = parse(['--warmup', '--enable-torch-compile', 'false', '--vae-cpu-offload', '--dp', '1', '--mode', 'speed', '--device=cpu']);
  t.same(compat.ignored, ['--warmup', '--enable-torch-compile', '--vae-cpu-offload', '--performance-mode']);
  t.equal(compat.engine.dpSize, 1, '--dp is --dp-size');

  const yaml = join(dir, 'serve.yaml');
  writeFileSync(yaml, [
    '# serve options', 'num_gpus: 2', 'enable_cfg_parallel: true', "host: '0.0.0.0'", 'output_path: ""', 'port: 30011 # comment',
    'warmup_resolutions:', '  - 256x256', '  - 512x512', 'log_level: debug', 'device: cpu',
  ].join('\n'));
  const fromYaml = parse(['--config', yaml, '--port', '30012']);
  t.match(fromYaml.engine, { numGpus: 2, enableCfgParallel: true, outputPath: null });
  t.match(fromYaml.http, { host: '0.0.0.0', port: 30012 }, 'the command line wins over the file');
  t.equal(fromYaml.logLevel, 'debug');

  const json = join(dir, 'serve.json');
  writeFileSync(json, JSON.stringify({ max_queued_requests: 3, lora_scale: 0.5, served_model_name: 'tiny', device: 'cpu' }));
  t.match(parse(['--config', json]).engine, { maxQueuedRequests: 3, servedModelName: 'tiny' });

  t.same(parseYamlConfig('a: [1, two, "3"]\nb: yes\nc: ~\nd: 1.5e2'), { a: [1, 'two', '3'], b: true, c: null, d: 150 });
  const refused: [string[], RegExp][] = [
    [['--bogus'], /unknown option --bogus/],
    [['--port', 'http'], /--port expects an integer/],
    [['--port', '70000'], /--port must be 0\.\.65535/],
    [['--num-gpus', '4', '--ulysses-degree', '3', '--device', 'cpu'], /must equal --ulysses-degree x --ring-degree/],
    [['--enable-cfg-parallel', '--device', 'cpu'], /CFG parallelism/],
    [['--model-path', 'Wan-AI/Wan2.1-T2V-1.3B-Diffusers'], /looks like a Hugging Face repo id; sgld loads local folders only/],
    [['--model-path', dir], /has no model_index\.json/],
    [['--lora-path', join(dir, 'missing.safetensors')], /--lora-path .* does not exist/],
    [['--lora-merge-mode', 'dynamic'], /dynamic is not supported/],
    [['--dit-precision', 'fp8'], /--dit-precision must be one of bf16, fp16, fp32/],
    [['--log-level', 'loud'], /--log-level must be one of/],
    [['stray'], /unexpected argument "stray"/],
    [['--config', join(dir, 'none.yaml')], /cannot be read/],
  ];
  for (const [argv, message] of refused) t.throws(() => parseServeArgs(argv), { name: 'UsageError', message }, argv.join(' '));
  writeFileSync(yaml, 'num_gpus:\n  nested: 1\n');
  t.throws(() => parseServeArgs(['--config', yaml]), UsageError);
  writeFileSync(yaml, 'unknown_option: 1\n');
  t.throws(() => parseServeArgs(['--config', yaml]), { message: /unknown option --unknown-option \(in --config/ });
});
