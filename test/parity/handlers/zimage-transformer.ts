// transformer cases of a ZImagePipeline fixture set: one forward of the tiny ZImageTransformer2DModel (bf16 on
// disk, fp32 on the CPU device) with diffusers' list API: latents x_i [16, 1, H, W] and captions cap_feats_i
// [L_i, cap_feat_dim] of different sizes, normalised times t [B]; one output per item.
import { openDiffusersModel } from '../../../src/checkpoint/diffusers.js';
import { ZImageTransformer2DModel } from '../../../src/models/zimage/transformer.js';
import { Device } from '../../../src/runtime/device.js';
import { fromFloat32 } from '../../../src/runtime/ops.js';
import { scoped } from '../../../src/runtime/tensor.js';
import type { CaseContext, CaseOutput, FamilyHandlers, ParityCase, TensorSpec } from '../types.js';

export const family = 'ZImagePipeline';

let device: Device | undefined;
const models = new Map<string, ZImageTransformer2DModel>();

function modelFor(modelDir: string): ZImageTransformer2DModel {
  let model = models.get(modelDir);
  if (!model) {
    device ??= new Device({ backend: 'cpu' });
    const component = openDiffusersModel(modelDir).component('transformer');
    model = new ZImageTransformer2DModel(device, component.config, component.weights!);
    models.set(modelDir, model);
  }
  return model;
}

/** The case's inputs named `<prefix>_<stem>_<i>`, in index order. */
function indexed(c: ParityCase, stem: string): TensorSpec[] {
  const re = new RegExp(`_${stem}_(\\d+)$`);
  return c.inputs.filter((i) => re.test(i.name)).sort((a, b) => Number(re.exec(a.name)![1]) - Number(re.exec(b.name)![1]));
}

function transformer(c: ParityCase, ctx: CaseContext): CaseOutput[] {
  if (!ctx.modelDir) throw new Error('transformer case without a model folder');
  const model = modelFor(ctx.modelDir);
  const xs = indexed(c, 'x'), caps = indexed(c, 'cap_feats');
  const tSpec = c.inputs.find((i) => i.name.endsWith('_t'));
  if (xs.length === 0 || caps.length !== xs.length || !tSpec) throw new Error(`transformer case ${c.id} needs x_i, cap_feats_i and t inputs`);
  const t = Array.from(ctx.goldens.readFloat32(tSpec.name));
  const outs = scoped(() => {
    const load = (s: TensorSpec) => fromFloat32(model.device, ctx.goldens.readFloat32(s.name), s.shape);
    return model.forward(xs.map(load), t, caps.map(load));
  });
  try {
    return outs.map((o, i) => {
      const name = c.outputs.find((spec) => spec.name.endsWith(`_out_${i}`))?.name;
      if (!name) throw new Error(`transformer case ${c.id} has no output for item ${i}`);
      return { name, values: o.toFloat32Array() };
    });
  } finally {
    for (const o of outs) o.free();
  }
}

export const handlers: FamilyHandlers = { transformer };
