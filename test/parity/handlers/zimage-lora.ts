// lora cases of a ZImagePipeline fixture set: the same procedure as the Wan handler (runLoraCase in wan-lora.ts)
// on the tiny ZImageTransformer2DModel, whose reference case is the list API:
//   transformer([x_i: C x F x H x W], t, [cap_feats_i: L_i x cap_feat_dim]) -> [out_i]   (outputs concatenated).
import { openDiffusersModel } from '../../../src/checkpoint/diffusers.js';
import { ZImageTransformer2DModel } from '../../../src/models/zimage/transformer.js';
import { Device } from '../../../src/runtime/device.js';
import { fromFloat32 } from '../../../src/runtime/ops.js';
import { type Tensor, scoped } from '../../../src/runtime/tensor.js';
import type { CaseContext, FamilyHandlers, ParityCase, TensorSpec } from '../types.js';
import { type LoraCaseModel, loraCaseHandler } from './wan-lora.js';

export const family = 'ZImagePipeline';

/** The reference case's inputs ending in `_<stem>_<i>`, in index order. */
function indexed(reference: ParityCase, stem: string): TensorSpec[] {
  const re = new RegExp(`_${stem}_(\\d+)$`);
  return reference.inputs.filter((i) => re.test(i.name))
    .sort((a, b) => Number(a.name.match(re)![1]) - Number(b.name.match(re)![1]));
}

function zimageCaseModel(ctx: CaseContext, reference: ParityCase, device: Device): { model: LoraCaseModel; free(): void } {
  const component = openDiffusersModel(ctx.modelDir!).component('transformer');
  const transformer = new ZImageTransformer2DModel(device, component.config, component.weights!);
  const goldens = ctx.goldensFile(reference.file);
  const xs = indexed(reference, 'x'), caps = indexed(reference, 'cap_feats');
  const tSpec = reference.inputs.find((i) => /_t$/.test(i.name));
  if (xs.length === 0 || caps.length !== xs.length || !tSpec) throw new Error(`transformer case ${reference.id}: expected x_i, cap_feats_i and t inputs`);
  const xValues = xs.map((s) => goldens.readFloat32(s.name)), capValues = caps.map((s) => goldens.readFloat32(s.name));
  const t = Array.from(goldens.readFloat32(tSpec.name));
  const forward = (): Float32Array => {
    const outs = scoped(() => transformer.forward(
      xs.map((s, i) => fromFloat32(device, xValues[i]!, s.shape)), t, caps.map((s, i) => fromFloat32(device, capValues[i]!, s.shape))));
    try {
      const parts = outs.map((o: Tensor) => o.toFloat32Array());
      const all = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) { all.set(p, at); at += p.length; }
      return all;
    } finally {
      for (const o of outs) o.free();
    }
  };
  return { model: { weights: transformer.store, forward }, free: () => transformer.free() };
}

export const handlers: FamilyHandlers = { lora: loraCaseHandler('zimage', zimageCaseModel) };
