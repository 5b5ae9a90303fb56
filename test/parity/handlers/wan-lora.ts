// lora cases of a WanPipeline fixture set (and, through runLoraCase, of other families): load the tiny transformer,
// load the case's LoRA file with the LoRA engine and merge it at each strength the outputs ask for.
//   <p>_out_weight<s>_unfused   transformer output with the adapter at strength s. diffusers ran it unmerged
//                               (x W^T + s * (x A^T) B^T); we merge at s, which agrees within the case tolerance.
//   <p>_out_fused               output after fuse_lora(lora_scale = fuse_lora_scale)
//   <p>_fused_weight.<module>   that module's weight after the fuse
// Then unmerge must restore the base weights byte for byte and reproduce the base output bit for bit; the handler
// throws (failing the case) otherwise, and also when the base output is off the golden `original_output`.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { openDiffusersModel } from '../../../src/checkpoint/diffusers.js';
import { LoraManager } from '../../../src/lora/index.js';
import type { LoraModuleWeights } from '../../../src/lora/merge.js';
import { WanTransformer3DModel } from '../../../src/models/wan/transformer.js';
import { Device } from '../../../src/runtime/device.js';
import { fromFloat32 } from '../../../src/runtime/ops.js';
import { scoped } from '../../../src/runtime/tensor.js';
import { compareTensors } from '../../helpers/goldens.js';
import type { CaseContext, CaseHandler, CaseOutput, FamilyHandlers, ParityCase } from '../types.js';

export const family = 'WanPipeline';

/** A loaded transformer as the LoRA case needs it: its weights and one forward of the reference case. */
export interface LoraCaseModel {
  weights: LoraModuleWeights;
  /** Outputs of the transformer case, concatenated in the case's output order. */
  forward(): Float32Array;
}

/** The manifest's transformer case that produced `original_output` ("transformer.safetensors: tr_x_output"). */
export function referenceCase(c: ParityCase, ctx: CaseContext): ParityCase {
  const spec = String(c.original_output ?? '');
  const name = spec.includes(':') ? spec.slice(spec.indexOf(':') + 1).trim() : spec.trim();
  const found = ctx.manifest.cases.find((x) => x.kind === 'transformer' && x.outputs.some((o) => o.name === name));
  if (!found) throw new Error(`lora case ${c.id}: no transformer case produces ${name || '(original_output missing)'}`);
  return found;
}

function digest(weights: LoraModuleWeights): string {
  const h = createHash('sha256');
  for (const [key, t] of [...weights.tensors].sort(([a], [b]) => (a < b ? -1 : 1))) h.update(key).update(t.toBytes());
  return h.digest('hex');
}

const sameBits = (a: Float32Array, b: Float32Array): boolean =>
  a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;

/** Runs one lora case against `model` for the LoRA family `familyName`. */
export function runLoraCase(c: ParityCase, ctx: CaseContext, familyName: string, model: LoraCaseModel): CaseOutput[] {
  const reference = referenceCase(c, ctx);
  const fuseScale = Number(c.fuse_lora_scale);
  const manager = new LoraManager({ family: familyName, modules: { transformer: model.weights } });
  const baseDigest = digest(model.weights);
  const baseOutput = model.forward();

  const adapter = manager.load('case', join(ctx.setDir, String(c.lora_file)));
  for (const layer of adapter.layers) {
    if (layer.rank !== c.rank || layer.alpha !== c.alpha) {
      throw new Error(`${layer.module}: read rank ${layer.rank} / alpha ${layer.alpha}, the manifest says ${c.rank} / ${c.alpha}`);
    }
  }
  if (Array.isArray(c.target_modules)) {
    const got = adapter.layers.map((l) => l.module).sort().join(' ');
    const want = [...(c.target_modules as string[])].sort().join(' ');
    if (got !== want) throw new Error(`adapter targets [${got}], the manifest lists [${want}]`);
  }

  // What each output needs: a strength, and either the model output or one module's weight.
  const jobs = c.outputs.map((o) => {
    let m = o.name.match(/_out_weight([0-9.]+)_unfused$/);
    if (m) return { name: o.name, strength: Number(m[1]), module: undefined as string | undefined };
    if (/_out_fused$/.test(o.name)) return { name: o.name, strength: fuseScale, module: undefined };
    m = o.name.match(/_fused_weight\.(.+)$/);
    if (m) return { name: o.name, strength: fuseScale, module: m[1] };
    throw new Error(`lora case ${c.id}: output ${o.name} is not one this handler knows`);
  });
  const outputs: CaseOutput[] = [];
  for (const strength of [...new Set(jobs.map((j) => j.strength))]) {
    manager.apply('transformer', [{ nickname: 'case', strength }]);
    for (const j of jobs.filter((x) => x.strength === strength)) {
      if (j.module === undefined) { outputs.push({ name: j.name, values: model.forward() }); continue; }
      const w = model.weights.tensors.get(`${model.weights.prefix ?? ''}${j.module}.weight`);
      if (!w) throw new Error(`the model has no ${j.module}.weight`);
      outputs.push({ name: j.name, values: w.toFloat32Array() });
    }
  }

  // Unmerge: base weights byte for byte, base output bit for bit, and the base output on its golden.
  manager.unmerge('transformer');
  if (digest(model.weights) !== baseDigest) throw new Error('weights after unmerge differ from the base weights');
  if (!sameBits(model.forward(), baseOutput)) throw new Error('output after unmerge differs from the base output');
  const golden = ctx.goldensFile(reference.file).readFloat32(reference.outputs.map((o) => o.name)[0]!);
  const tol = { atol: c.tolerance.atol ?? 0, rtol: c.tolerance.rtol ?? 0 };
  const cmp = compareTensors(baseOutput.subarray(0, golden.length), golden, tol);
  if (!cmp.pass) throw new Error(`base output off ${reference.outputs[0]!.name}: max abs ${cmp.maxAbs}`);
  return outputs;
}

// ---- Wan --------------------------------------------------------------------------------------------------------

function wanCaseModel(ctx: CaseContext, reference: ParityCase, device: Device): { model: LoraCaseModel; free(): void } {
  const component = openDiffusersModel(ctx.modelDir!).component('transformer');
  const transformer = new WanTransformer3DModel(device, component.config, component.weights!);
  const goldens = ctx.goldensFile(reference.file);
  const input = (suffix: string) => {
    const spec = reference.inputs.find((i) => i.name.endsWith(suffix));
    if (!spec) throw new Error(`transformer case ${reference.id} has no *${suffix} input`);
    return spec;
  };
  const latents = input('_hidden_states'), text = input('_encoder_hidden_states'), ts = input('_timestep');
  const timestep = goldens.info(ts.name).dtype === 'I64'
    ? Array.from(goldens.readBigInt64(ts.name), Number) : Array.from(goldens.readFloat32(ts.name));
  const latentValues = goldens.readFloat32(latents.name), textValues = goldens.readFloat32(text.name);
  const forward = (): Float32Array => {
    const out = scoped(() => transformer.forward(fromFloat32(device, latentValues, latents.shape), timestep,
      fromFloat32(device, textValues, text.shape)));
    try { return out.toFloat32Array(); } finally { out.free(); }
  };
  return { model: { weights: transformer.store, forward }, free: () => transformer.free() };
}

/**
 * The lora handler of a family: builds its tiny transformer (on a fresh CPU device, freed after the case) from the
 * reference case, then runs the shared procedure.
 */
export function loraCaseHandler(familyKey: 'wan' | 'zimage',
  build: (ctx: CaseContext, reference: ParityCase, device: Device) => { model: LoraCaseModel; free(): void }): CaseHandler {
  return (c, ctx) => {
    if (!ctx.modelDir) throw new Error('lora case without a model folder');
    const device = new Device({ backend: 'cpu' });
    try {
      const { model, free } = build(ctx, referenceCase(c, ctx), device);
      try {
        return runLoraCase(c, ctx, familyKey, model);
      } finally {
        free();
      }
    } finally {
      device.close();
    }
  };
}

export const handlers: FamilyHandlers = { lora: loraCaseHandler('wan', wanCaseModel) };
