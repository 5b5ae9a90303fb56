// pipeline cases (zimage-tiny: pipeline/turbo, pipeline/cfg): the whole ZImagePipeline call from the golden
// initial latents; per step the raw transformer outputs (positive, and negative where CFG ran) and the latents
// after scheduler.step, then the images in [0, 1].
import { ZImagePipeline } from '../../../src/pipelines/zimage/pipeline.js';
import type { CaseOutput, FamilyHandlers } from '../types.js';

export const family = 'ZImagePipeline';

const pipelines = new Map<string, ZImagePipeline>();
function pipelineFor(dir: string): ZImagePipeline {
  let p = pipelines.get(dir);
  if (!p) { p = ZImagePipeline.load(dir); pipelines.set(dir, p); }
  return p;
}

interface PipelineCall {
  prompt: string; negative_prompt?: string; height: number; width: number; num_inference_steps: number;
  guidance_scale: number; cfg_truncation?: number; cfg_normalization?: number | boolean; latents: string;
  max_sequence_length?: number; output_type?: string;
}

export const handlers: FamilyHandlers = {
  pipeline: async (c, ctx) => {
    const call = c.call as PipelineCall;
    if (call.output_type && call.output_type !== 'np') throw new Error(`output_type ${call.output_type} not handled`);
    const prefix = call.latents.replace(/latents_init$/, '');
    const outputs: CaseOutput[] = [];
    const result = await pipelineFor(ctx.modelDir!).generate({
      prompt: call.prompt, negativePrompt: call.negative_prompt, height: call.height, width: call.width,
      numInferenceSteps: call.num_inference_steps, guidanceScale: call.guidance_scale,
      cfgTruncation: call.cfg_truncation, cfgNormalization: call.cfg_normalization,
      latents: ctx.goldens.readFloat32(call.latents), maxSequenceLength: call.max_sequence_length,
    }, {
      onStepTensors: (i, t) => {
        outputs.push({ name: `${prefix}transformer_out_${i}_pos`, values: t.pos[0]! });
        if (t.neg) outputs.push({ name: `${prefix}transformer_out_${i}_neg`, values: t.neg[0]! });
        outputs.push({ name: `${prefix}latents_after_step_${i}`, values: t.latents });
      },
    });
    outputs.push({ name: `${prefix}images`, values: result.data });
    return outputs;
  },
};
