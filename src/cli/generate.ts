// `sgld generate`: one prompt -> one PNG/JPEG/WebP image or MP4 video file, for users and quick checks.
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ImageFormat, encodeImage } from '../media/image.js';
import { resolveQualityLevel } from '../media/quality.js';
import { encodeMp4 } from '../media/video.js';
import { WanPipeline } from '../pipelines/wan/pipeline.js';
import { toUint8Frames } from '../pipelines/types.js';
import { Device } from '../runtime/device.js';
import { type FlagSpec, UsageError, formatFlags, parseFlags } from './args.js';
import { ProgressBar } from './progress.js';

/** The embedded default model shipped in the package (tiny, random weights: its pictures are noise). */
export const DEFAULT_MODEL_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'models', 'wan-tiny');

const FLAGS: Record<string, FlagSpec> = {
  'model-path': { type: 'string', help: 'Diffusers folder (model_index.json); default: the embedded tiny model' },
  prompt: { type: 'string', help: 'text prompt (required)' },
  'negative-prompt': { type: 'string', default: '', help: 'negative prompt' },
  output: { type: 'string', help: 'output file: .png/.jpg/.webp for an image, .mp4 for a video (required)' },
  width: { type: 'int', help: 'width in pixels (default: 832 for real models, 64 for the embedded one)' },
  height: { type: 'int', help: 'height in pixels (default: 480 for real models, 64 for the embedded one)' },
  'num-frames': { type: 'int', help: 'frames (4k+1; 1 = image); default 81, or 1 for an image output' },
  'num-inference-steps': { type: 'int', default: 50, help: 'denoising steps', aliases: ['steps'] },
  'guidance-scale': { type: 'float', default: 5.0, help: 'classifier-free guidance scale (> 1 enables CFG)' },
  seed: { type: 'int', default: 1024, help: 'seed of the CPU noise generator (same noise as diffusers)' },
  fps: { type: 'int', default: 16, help: 'video frame rate' },
  'output-quality': { type: 'string', default: 'default', help: 'maximum | high | medium | low | default' },
  'output-compression': { type: 'int', help: '0..100 quality level (overrides --output-quality)' },
  threads: { type: 'int', default: 0, help: 'CPU threads (0 = all cores)' },
  help: { type: 'bool', default: false, help: 'show this help' },
};

const IMAGE_EXT: Record<string, ImageFormat> = { '.png': 'png', '.jpg': 'jpeg', '.jpeg': 'jpeg', '.webp': 'webp' };

export async function generateCommand(argv: readonly string[]): Promise<number> {
  const { values: v } = parseFlags(argv, FLAGS);
  if (v.help) {
    console.log(`Usage: sgld generate --prompt TEXT --output FILE [options]\n\n${formatFlags(FLAGS)}`);
    return 0;
  }
  if (typeof v.prompt !== 'string' || !v.prompt) throw new UsageError('--prompt is required');
  if (typeof v.output !== 'string' || !v.output) throw new UsageError('--output is required (e.g. out.mp4 or out.png)');
  const output = resolve(v.output);
  const ext = extname(output).toLowerCase();
  const imageFormat = IMAGE_EXT[ext];
  if (!imageFormat && ext !== '.mp4') throw new UsageError(`--output must end in .png, .jpg, .webp or .mp4 (got "${ext || 'no extension'}")`);
  if (!existsSync(dirname(output))) throw new UsageError(`the output folder ${dirname(output)} does not exist`);

  const embedded = v.modelPath === undefined;
  const modelPath = resolve((v.modelPath as string | undefined) ?? DEFAULT_MODEL_DIR);
  const numFrames = (v.numFrames as number | undefined) ?? (imageFormat ? 1 : embedded ? 9 : 81);
  if (imageFormat && numFrames !== 1) throw new UsageError(`an image output needs --num-frames 1 (got ${numFrames}); use .mp4 for video`);
  const width = (v.width as number | undefined) ?? (embedded ? 64 : 832);
  const height = (v.height as number | undefined) ?? (embedded ? 64 : 480);

  const bar = new ProgressBar(process.stderr);
  bar.note(`loading ${embedded ? 'the embedded default model (random weights: expect noise)' : modelPath}`);
  const device = new Device({ threads: v.threads as number });
  const pipe = WanPipeline.load(modelPath, { device });
  try {
    const result = await pipe.generate({
      prompt: v.prompt, negativePrompt: v.negativePrompt as string, width, height, numFrames,
      numInferenceSteps: v.numInferenceSteps as number, guidanceScale: v.guidanceScale as number, seed: v.seed as number,
    }, { onProgress: (p) => bar.update(p.phase, p.step, p.total, p.eta) });
    bar.done();
    for (const a of result.request.adjustments) bar.note(`adjusted: ${a}`);
    const frames = toUint8Frames(result);
    const level = resolveQualityLevel(imageFormat ? 'image' : 'video', v.outputQuality as string, v.outputCompression as number | undefined);
    if (imageFormat) {
      await writeFile(output, await encodeImage({ width: result.width, height: result.height, data: frames[0]! }, imageFormat, level));
    } else {
      await encodeMp4(frames.map((data) => ({ width: result.width, height: result.height, data })), output, { fps: v.fps as number, level });
    }
    const t = result.timings;
    bar.note(`wrote ${output} (${result.width}x${result.height}, ${result.frames} frame${result.frames > 1 ? 's' : ''}; ` +
      `text ${(t.encodeMs / 1000).toFixed(2)} s, denoise ${(t.denoiseMs / 1000).toFixed(2)} s, decode ${(t.decodeMs / 1000).toFixed(2)} s)`);
    return 0;
  } finally {
    pipe.dispose();
    device.close();
  }
}
