// transformer cases of a WanPipeline fixture set: one forward of the tiny WanTransformer3DModel (bf16 on disk,
// fp32 on the CPU device) on the case's latents, timestep(s) and text states.
import { openDiffusersModel } from '../../../src/checkpoint/diffusers.js';
import { WanTransformer3DModel } from '../../../src/models/wan/transformer.js';
import { Device } from '../../../src/runtime/device.js';
import { fromFloat32 } from '../../../src/runtime/ops.js';
import { scoped } from '../../../src/runtime/tensor.js';
import type { CaseContext, CaseOutput, FamilyHandlers, ParityCase, TensorSpec } from '../types.js';

export const family = 'WanPipeline';

let device: Device | undefined;
const models = new Map<string, WanTransformer3DModel>();

function modelFor(modelDir: string): WanTransformer3DModel {
  let model = models.get(modelDir);
  if (!model) {
    device ??= new Device({ backend: 'cpu' });
    const component = openDiffusersModel(modelDir).component('transformer');
    model = new WanTransformer3DModel(device, component.config, component.weights!);
    models.set(modelDir, model);
  }
  return model;
}

function input(c: ParityCase, suffix: string): TensorSpec {
  const spec = c.inputs.find((i) => i.name.endsWith(suffix));
  if (!spec) throw new Error(`transformer case ${c.id} has no *${suffix} input`);
  return spec;
}

function transformer(c: ParityCase, ctx: CaseContext): CaseOutput[] {
  if (!ctx.modelDir) throw new Error('transformer case without a model folder');
  const model = modelFor(ctx.modelDir);
  const latentsSpec = input(c, '_hidden_states');
  const textSpec = input(c, '_encoder_hidden_states');
  const timestepSpec = input(c, '_timestep');
  // The timestep is int64 in one case and float32 in another, as the pipeline may pass either.
  const timestep = ctx.goldens.info(timestepSpec.name).dtype === 'I64'
    ? Array.from(ctx.goldens.readBigInt64(timestepSpec.name), Number)
    : Array.from(ctx.goldens.readFloat32(timestepSpec.name));
  const out = scoped(() => {
    const latents = fromFloat32(model.device, ctx.goldens.readFloat32(latentsSpec.name), latentsSpec.shape);
    const text = fromFloat32(model.device, ctx.goldens.readFloat32(textSpec.name), textSpec.shape);
    return model.forward(latents, timestep, text);
  });
  try {
    return [{ name: c.outputs[0]!.name, values: out.toFloat32Array() }];
  } finally {
    out.free();
  }
}

export const handlers: FamilyHandlers = { transformer };
