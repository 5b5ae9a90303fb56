// The encoder pool's worker side (piscina): one named export per task. Pixels arrive as transferred buffers and
// encoded images go back the same way; videos are written by ffmpeg straight to their file.
import { stat } from 'node:fs/promises';
import { move } from 'piscina';
import { type ImageFormat, encodeImage } from '../media/image.js';
import { encodeMp4 } from '../media/video.js';

export interface ImageTask { width: number; height: number; data: Uint8Array; format: ImageFormat; level: number }
export interface VideoTask { width: number; height: number; frames: number; data: Uint8Array; path: string; fps: number; level: number }

/** Encodes RGB pixels to PNG/JPEG/WebP; the bytes come back transferred. */
export async function image(task: ImageTask): Promise<Uint8Array> {
  const encoded = await encodeImage({ width: task.width, height: task.height, data: task.data }, task.format, task.level);
  // sharp's Buffer may share a larger ArrayBuffer; hand over a buffer of our own.
  const bytes = new Uint8Array(encoded.byteLength);
  bytes.set(encoded);
  return move(bytes) as unknown as Uint8Array;
}

/** Encodes the frames to an MP4 file at `path`; answers its size in bytes. */
export async function video(task: VideoTask): Promise<number> {
  const per = task.width * task.height * 3;
  const frames = Array.from({ length: task.frames }, (_, i) => ({
    width: task.width, height: task.height, data: task.data.subarray(i * per, (i + 1) * per),
  }));
  await encodeMp4(frames, task.path, { fps: task.fps, level: task.level });
  return (await stat(task.path)).size;
}
