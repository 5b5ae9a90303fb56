// Sharded sources and the Diffusers folder loader: every tensor of the fixture checkpoints against what the
// shard indexes and headers say (parsed here independently), and the errors of broken folders.
import t from 'tap';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { openDiffusersModel, requireTensor } from '../../src/checkpoint/diffusers.js';
import { SafetensorsFile, writeSafetensors } from '../../src/checkpoint/safetensors.js';
import { ShardedSafetensors, openTensorSource } from '../../src/checkpoint/sharded.js';
import { fixtureRoot, loadManifest } from '../helpers/goldens.js';

const tmp = mkdtempSync(join(tmpdir(), 'sgld-checkpoint-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

interface RawEntry { dtype: string; shape: number[]; data_offsets: [number, number] }

/** Minimal independent reading of a small safetensors file: header entries plus the data section. */
function parseSmallSafetensors(path: string): { entries: Record<string, RawEntry>; data: Buffer } {
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.toString('utf8', 8, 8 + n)) as Record<string, RawEntry>;
  delete header.__metadata__;
  return { entries: header, data: bytes.subarray(8 + n) };
}

/** float32 values of raw little-endian bytes, decoded here without the reader's code (F32 and BF16 only). */
function decode(dtype: string, raw: Buffer): number[] {
  const out: number[] = [];
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  if (dtype === 'F32') for (let i = 0; i < raw.length; i += 4) out.push(raw.readFloatLE(i));
  else if (dtype === 'BF16') for (let i = 0; i < raw.length; i += 2) { u[0] = raw.readUInt16LE(i) * 65536; out.push(f[0]!); }
  else throw new Error(`decode: ${dtype} not expected in the fixtures`);
  return out;
}

const DTYPE_NAMES: Record<string, string> = { bfloat16: 'BF16', float32: 'F32', float16: 'F16' };

for (const set of ['wan-tiny', 'zimage-tiny']) {
  t.test(`${set}: every tensor of the fixture checkpoint matches its index and headers`, async (t) => {
    const setDir = join(fixtureRoot(), set);
    const manifest = loadManifest(set);
    const modelDir = join(setDir, manifest.model_dir ?? 'model');
    const index = JSON.parse(readFileSync(join(modelDir, 'model_index.json'), 'utf8')) as Record<string, unknown>;
    const model = openDiffusersModel(modelDir);
    t.teardown(() => model.close());

    t.equal(model.pipelineClass, index._class_name);
    const listed = Object.entries(index).filter(([k, v]) => !k.startsWith('_') && Array.isArray(v) && v.length === 2);
    const present = listed.filter(([, v]) => (v as unknown[])[0] !== null).map(([k]) => k).sort();
    t.same([...model.components.keys()].sort(), present, 'one component per non-null model_index entry');
    t.same(model.absent.sort(), listed.filter(([, v]) => (v as unknown[])[0] === null).map(([k]) => k).sort());
    for (const [name, [library, className]] of listed.filter(([k]) => present.includes(k)) as [string, [string, string]][]) {
      const c = model.component(name);
      t.equal(c.library, library, `${name} library`);
      t.equal(c.className, className, `${name} class`);
    }

    const onDisk = (manifest.component_dtypes_on_disk ?? {}) as Record<string, string>;
    let tensors = 0;
    let maxAbs = 0;
    for (const c of model.components.values()) {
      if (c.kind !== 'model') {
        t.equal(c.weights, undefined, `${c.name} (${c.kind}) has no weights`);
        continue;
      }
      // diffusers configs carry `_class_name`, transformers configs `architectures`.
      const declared = c.library === 'transformers' ? (c.config.architectures as string[] | undefined)?.[0] : c.config._class_name;
      t.equal(declared, c.className, `${c.name}/config.json names the class model_index.json gives`);
      const weights = c.weights!;
      const files = c.files.filter((f) => f.endsWith('.safetensors')).sort();
      // What the folder says, read independently: the index's weight_map, or the single file's header.
      const expected = new Map<string, { shard: string; entry: RawEntry; data: Buffer }>();
      const headers = new Map(files.map((f) => [f, parseSmallSafetensors(join(c.dir, f))]));
      if (c.weightsPath!.endsWith('.index.json')) {
        const idx = JSON.parse(readFileSync(c.weightsPath!, 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
        t.ok(weights instanceof ShardedSafetensors, `${c.name}: sharded source`);
        t.same((weights as ShardedSafetensors).verify(), [], `${c.name}: shards and index agree (incl. total_size)`);
        t.same([...new Set(Object.values(idx.weight_map))].sort(), files, `${c.name}: the index names exactly the shard files present`);
        let total = 0;
        for (const [name, shard] of Object.entries(idx.weight_map)) {
          const h = headers.get(shard)!;
          t.ok(h.entries[name], `${c.name}: ${name} is in ${shard} as the index says`);
          expected.set(name, { shard, entry: h.entries[name]!, data: h.data });
          total += h.entries[name]!.data_offsets[1] - h.entries[name]!.data_offsets[0];
        }
        const inShards = [...headers.values()].reduce((s, h) => s + Object.keys(h.entries).length, 0);
        t.equal(inShards, expected.size, `${c.name}: no shard holds a tensor the index does not list`);
        t.equal(total, idx.metadata.total_size, `${c.name}: metadata.total_size is the tensors' bytes`);
      } else {
        t.same(files, [basename(c.weightsPath!)], `${c.name}: one weights file`);
        const h = headers.get(files[0]!)!;
        for (const [name, entry] of Object.entries(h.entries)) expected.set(name, { shard: files[0]!, entry, data: h.data });
      }
      t.same(weights.names().sort(), [...expected.keys()].sort(), `${c.name}: tensor names`);
      const wantDtype = DTYPE_NAMES[onDisk[c.name] ?? ''];
      for (const [name, e] of expected) {
        const info = weights.info(name);
        const ok = info.dtype === e.entry.dtype && JSON.stringify(info.shape) === JSON.stringify(e.entry.shape) &&
          basename(info.file) === e.shard && info.byteLength === e.entry.data_offsets[1] - e.entry.data_offsets[0] &&
          (wantDtype === undefined || info.dtype === wantDtype);
        if (!ok) t.fail(`${c.name}: ${name}: reader says ${info.dtype} [${info.shape}] in ${basename(info.file)}, header ${e.entry.dtype} [${e.entry.shape}] in ${e.shard}`);
        const raw = e.data.subarray(e.entry.data_offsets[0], e.entry.data_offsets[1]);
        if (!Buffer.from(weights.readRaw(name)).equals(raw)) t.fail(`${c.name}: ${name}: raw bytes differ`);
        const ours = weights.readFloat32(name);
        const ref = decode(e.entry.dtype, raw);
        for (let i = 0; i < ref.length; i++) maxAbs = Math.max(maxAbs, Math.abs(ours[i]! - ref[i]!));
        tensors++;
      }
      t.pass(`${c.name}: ${expected.size} tensors checked (name, dtype ${wantDtype ?? 'any'}, shape, shard, bytes, values)`);
    }
    t.equal(maxAbs, 0, `readFloat32 equals an independent decode of the bytes exactly (max abs ${maxAbs}) over ${tensors} tensors`);
    t.comment(`${set}: ${tensors} tensors, max |readFloat32 - independent decode| = ${maxAbs}`);

    const tok = model.component('tokenizer');
    t.equal(tok.kind, 'tokenizer');
    t.ok(tok.files.includes('tokenizer.json'), 'tokenizer files listed');
    t.ok(tok.configPath?.endsWith('tokenizer_config.json'));
    const sched = model.component('scheduler');
    t.ok(sched.configPath?.endsWith('scheduler_config.json'));
    t.equal(sched.config._class_name, sched.className);
  });
}

t.test('wan-tiny: plain model_index values and [null, null] components', async (t) => {
  const model = openDiffusersModel(join(fixtureRoot(), 'wan-tiny', 'model'));
  t.teardown(() => model.close());
  t.same(model.absent, ['transformer_2']);
  t.same(model.options, { boundary_ratio: null, expand_timesteps: false });
  t.equal(model.diffusersVersion, '0.36.0');
  t.throws(() => model.component('transformer_2'), /model_index\.json: component 'transformer_2' is listed as \[null, null\] \(absent\)/);
  t.throws(() => model.component('unet'), /component 'unet' is not listed/);
  t.throws(() => model.weights('scheduler'), /scheduler: component 'scheduler' \(UniPCMultistepScheduler\) has no weights/);
});

t.test('requireTensor names the file, the tensor and both shapes', async (t) => {
  const model = openDiffusersModel(join(fixtureRoot(), 'wan-tiny', 'model'));
  t.teardown(() => model.close());
  const w = model.weights('transformer');
  const name = w.names()[0]!;
  const info = w.info(name);
  t.same(requireTensor(w, name, info.shape).shape, info.shape);
  const wrong = [...info.shape, 7];
  t.throws(() => requireTensor(w, name, wrong),
    new RegExp(`${basename(info.file).replace(/\./g, '\\.')}: tensor '${name.replace(/\./g, '\\.')}': shape \\[${info.shape.join(', ')}\\] but \\[${wrong.join(', ')}\\] was expected`));
  t.throws(() => requireTensor(w, 'no.such.weight', [1]), /diffusion_pytorch_model\.safetensors\.index\.json: tensor 'no\.such\.weight': required tensor is missing/);
});

/** A small synthetic Diffusers folder: one diffusers model with a single weights file, a scheduler, a tokenizer. */
function syntheticPipeline(name: string): string {
  const root = join(tmp, name);
  mkdirSync(join(root, 'transformer'), { recursive: true });
  mkdirSync(join(root, 'scheduler'));
  mkdirSync(join(root, 'tokenizer'));
  writeFileSync(join(root, 'model_index.json'), JSON.stringify({
    _class_name: 'TestPipeline', transformer: ['diffusers', 'TestTransformer'], scheduler: ['diffusers', 'EulerScheduler'],
    tokenizer: ['transformers', 'T5TokenizerFast'], safety_checker: [null, null], boundary_ratio: 0.875,
  }));
  writeFileSync(join(root, 'transformer', 'config.json'), JSON.stringify({ _class_name: 'TestTransformer', dim: 4 }));
  writeSafetensors(join(root, 'transformer', 'diffusion_pytorch_model.safetensors'),
    { 'proj.weight': { dtype: 'F32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) } });
  writeFileSync(join(root, 'scheduler', 'scheduler_config.json'), JSON.stringify({ _class_name: 'EulerScheduler', shift: 3 }));
  writeFileSync(join(root, 'tokenizer', 'tokenizer.json'), '{}');
  return root;
}

t.test('a synthetic pipeline folder loads, with the tokenizer config optional', async (t) => {
  const root = syntheticPipeline('ok');
  const model = openDiffusersModel(root);
  t.teardown(() => model.close());
  t.equal(model.pipelineClass, 'TestPipeline');
  t.same(model.options, { boundary_ratio: 0.875 });
  t.same(model.absent, ['safety_checker']);
  t.same(model.component('scheduler').config, { _class_name: 'EulerScheduler', shift: 3 });
  t.same(model.component('tokenizer').config, {}, 'no tokenizer_config.json: empty config');
  t.same(model.component('transformer').config.dim, 4);
  t.same(Array.from(model.weights('transformer').readFloat32('proj.weight')), [1, 2, 3, 4]);
});

t.test('variant weights are ignored unless requested', async (t) => {
  const root = syntheticPipeline('variant');
  const dir = join(root, 'transformer');
  writeSafetensors(join(dir, 'diffusion_pytorch_model.fp16.safetensors'),
    { 'proj.weight': { dtype: 'F16', shape: [2, 2], data: new Uint16Array([0x3c00, 0x4000, 0x4200, 0x4400]) } });
  const plain = openDiffusersModel(root);
  t.equal(basename(plain.component('transformer').weightsPath!), 'diffusion_pytorch_model.safetensors');
  plain.close();
  const fp16 = openDiffusersModel(root, { variant: 'fp16' });
  t.equal(basename(fp16.component('transformer').weightsPath!), 'diffusion_pytorch_model.fp16.safetensors');
  t.same(Array.from(fp16.weights('transformer').readFloat32('proj.weight')), [1, 2, 3, 4]);
  fp16.close();
  rmSync(join(dir, 'diffusion_pytorch_model.safetensors'));
  t.throws(() => openDiffusersModel(root), /transformer: model component TestTransformer has no weights: looked for diffusion_pytorch_model\.safetensors, .*found diffusion_pytorch_model\.fp16\.safetensors: pass the variant/);
});

t.test('broken folders are refused naming the path', async (t) => {
  t.throws(() => openDiffusersModel(join(tmp, 'nowhere')), /nowhere: does not exist; a Diffusers pipeline folder is expected/);
  mkdirSync(join(tmp, 'empty'));
  t.throws(() => openDiffusersModel(join(tmp, 'empty')), /empty: has no model_index\.json/);

  const noFolder = syntheticPipeline('no-folder');
  rmSync(join(noFolder, 'scheduler'), { recursive: true });
  t.throws(() => openDiffusersModel(noFolder), /no-folder\/scheduler: model_index\.json lists component 'scheduler' \(diffusers EulerScheduler\) but its folder is missing/);

  const noConfig = syntheticPipeline('no-config');
  rmSync(join(noConfig, 'transformer', 'config.json'));
  t.throws(() => openDiffusersModel(noConfig), /no-config\/transformer: component 'transformer' \(TestTransformer\) has no config\.json/);

  const noSchedConfig = syntheticPipeline('no-sched-config');
  rmSync(join(noSchedConfig, 'scheduler', 'scheduler_config.json'));
  t.throws(() => openDiffusersModel(noSchedConfig), /scheduler: component 'scheduler' \(EulerScheduler\) has no scheduler_config\.json/);

  const noTok = syntheticPipeline('no-tokenizer-files');
  rmSync(join(noTok, 'tokenizer', 'tokenizer.json'));
  t.throws(() => openDiffusersModel(noTok), /tokenizer: tokenizer 'tokenizer' \(T5TokenizerFast\) has none of tokenizer_config\.json, tokenizer\.json/);

  const pickle = syntheticPipeline('pickle');
  renameSync(join(pickle, 'transformer', 'diffusion_pytorch_model.safetensors'), join(pickle, 'transformer', 'diffusion_pytorch_model.bin'));
  t.throws(() => openDiffusersModel(pickle), /found only PyTorch pickle weights diffusion_pytorch_model\.bin; sgld reads safetensors only/);

  const badIndex = syntheticPipeline('bad-index');
  writeFileSync(join(badIndex, 'model_index.json'), '{"_class_name": ');
  t.throws(() => openDiffusersModel(badIndex), /bad-index\/model_index\.json: model_index\.json cannot be read as JSON/);
});

t.test('sharded sources: lazy shards and clear errors for a missing shard or name', async (t) => {
  const src = join(fixtureRoot(), 'wan-tiny', 'model', 'transformer');
  const dir = join(tmp, 'shards');
  cpSync(src, dir, { recursive: true });
  const indexPath = join(dir, 'diffusion_pytorch_model.safetensors.index.json');
  const idx = JSON.parse(readFileSync(indexPath, 'utf8')) as { weight_map: Record<string, string> };
  const [first, second] = [...new Set(Object.values(idx.weight_map))].sort() as [string, string];
  const inSecond = Object.keys(idx.weight_map).find((n) => idx.weight_map[n] === second)!;
  const inFirst = Object.keys(idx.weight_map).find((n) => idx.weight_map[n] === first)!;

  const source = openTensorSource(indexPath) as ShardedSafetensors;
  t.ok(source.has(inFirst));
  t.notOk(source.has('nope'));
  t.throws(() => source.info('nope'), /diffusion_pytorch_model\.safetensors\.index\.json: tensor 'nope': not in the weight_map/);
  rmSync(join(dir, second));
  t.same(source.readFloat32(inFirst).length > 0, true, 'a tensor of a present shard reads while another shard is missing');
  t.throws(() => source.readFloat32(inSecond),
    new RegExp(`index\\.json: shard file ${second.replace(/\./g, '\\.')} listed in the weight_map is missing \\(looked for .*shards/`));
  t.match(source.verify().join('\n'), /is missing/);
  source.close();

  // An index that maps a tensor to the wrong shard: the read names both, verify() reports it.
  cpSync(join(src, second), join(dir, second));
  idx.weight_map[inSecond] = first;
  writeFileSync(indexPath, JSON.stringify(idx));
  const wrong = ShardedSafetensors.open(indexPath);
  t.throws(() => wrong.info(inSecond), new RegExp(`tensor '${inSecond.replace(/\./g, '\\.')}': the index maps it to ${first.replace(/\./g, '\\.')} but that shard does not hold it`));
  t.match(wrong.verify().join('\n'), new RegExp(`'${inSecond.replace(/\./g, '\\.')}' is mapped to ${first.replace(/\./g, '\\.')}`));
  wrong.close();

  writeFileSync(indexPath, '{"metadata": {}}');
  t.throws(() => ShardedSafetensors.open(indexPath), /index\.json: shard index has no "weight_map" object/);
  t.ok(existsSync(join(dir, first)));
  t.ok(openTensorSource(join(dir, first)) instanceof SafetensorsFile, 'a .safetensors path opens as a single file');
});
