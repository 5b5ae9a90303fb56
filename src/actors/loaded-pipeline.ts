// A device rank's pipeline behind one interface, whichever family model_index.json names: Wan (text-to-video,
// text-to-image as one frame, image-to-image through the VAE) or Z-Image (text-to-image, image-to-image). Runs in
// the DeviceActor's thread.
import type { LoraModuleName } from '../lora/index.js';
import type { LoraModuleWeights } from '../lora/merge.js';
import { type FloatFrames, type ProgressCallback } from '../pipelines/types.js';
import { wanImageToImage } from '../pipelines/wan/image-to-image.js';
import { WanPipeline } from '../pipelines/wan/pipeline.js';
import { ZImagePipeline } from '../pipelines/zimage/pipeline.js';
import type { Device } from '../runtime/device.js';
import type { GenerationRun } from './device-protocol.js';
import { readModelProfile } from './model-profile.js';

export interface RunOptions {
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
}

export interface LoadedPipeline {
  readonly pipelineClass: string;
  /** LoRA family name (src/lora) and the modules an adapter can target. */
  readonly loraFamily: string;
  loraModules(): Partial<Record<LoraModuleName, LoraModuleWeights>>;
  run(run: GenerationRun, options: RunOptions): Promise<FloatFrames>;
  dispose(): void;
}

/** Loads the pipeline of a Diffusers folder onto `device`. */
export function loadPipeline(dir: string, device: Device): LoadedPipeline {
  const { family } = readModelProfile(dir);
  return family === 'wan' ? wanPipeline(WanPipeline.load(dir, { device })) : zImagePipeline(ZImagePipeline.load(dir, { device }));
}

function wanPipeline(pipe: WanPipeline): LoadedPipeline {
  return {
    pipelineClass: 'WanPipeline',
    loraFamily: 'wan',
    loraModules: () => ({ transformer: pipe.transformer.store }),
    run: async (r, { onProgress, signal }) => {
      const common = {
        prompt: r.prompt, negativePrompt: r.negativePrompt, width: r.width, height: r.height,
        numInferenceSteps: r.numInferenceSteps, guidanceScale: r.guidanceScale, seed: r.seed,
        ...(r.maxSequenceLength !== undefined ? { maxSequenceLength: r.maxSequenceLength } : {}),
      };
      if (r.image) return wanImageToImage(pipe, { ...common, image: r.image, ...(r.strength !== undefined ? { strength: r.strength } : {}) }, { onProgress, signal });
      return pipe.generate({ ...common, numFrames: r.numFrames }, { onProgress, signal });
    },
    dispose: () => pipe.dispose(),
  };
}

function zImagePipeline(pipe: ZImagePipeline): LoadedPipeline {
  const transformer = pipe.transformer as { store?: LoraModuleWeights };
  return {
    pipelineClass: 'ZImagePipeline',
    loraFamily: 'zimage',
    loraModules: () => (transformer.store ? { transformer: transformer.store } : {}),
    run: (r, { onProgress, signal }) => pipe.generate({
      prompt: r.prompt, negativePrompt: r.negativePrompt, width: r.width, height: r.height,
      numInferenceSteps: r.numInferenceSteps, guidanceScale: r.guidanceScale, seed: r.seed,
      ...(r.maxSequenceLength !== undefined ? { maxSequenceLength: r.maxSequenceLength } : {}),
      ...(r.image ? { image: r.image } : {}),
      ...(r.strength !== undefined ? { strength: r.strength } : {}),
    }, { onProgress, signal }),
    dispose: () => pipe.dispose(),
  };
}
