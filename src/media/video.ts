// H.264 MP4 encoding of RGB frames through a real ffmpeg, driven by fluent-ffmpeg (kept behind this one module
// so it can be replaced by child_process.spawn without touching the rest).
import ffmpeg from 'fluent-ffmpeg';
import { existsSync, unlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import type { RgbImage } from './image.js';
import { crfForLevel } from './quality.js';

const require = createRequire(import.meta.url);

/** The ffmpeg binary: $FFMPEG_PATH, else Debian's /usr/bin/ffmpeg (newer, has NVENC), else the npm build. */
export function ffmpegPath(): string {
  if (process.env.FFMPEG_PATH) return process.env.FFMPEG_PATH;
  if (existsSync('/usr/bin/ffmpeg')) return '/usr/bin/ffmpeg';
  return (require('@ffmpeg-installer/ffmpeg') as { path: string }).path;
}

export interface VideoEncodeOptions {
  fps: number;
  /** 0..100 quality level (spec 4.3); CRF = floor((1 - level/100) * 51). */
  level: number;
}

/** Rounds a side up to the next multiple of 16, as SGLang's encoder does for yuv420p/H.264 macroblocks. */
const to16 = (x: number): number => Math.ceil(x / 16) * 16;

/** Encodes frames (all the same size) to an MP4 file at `path` (H.264 High, yuv420p, +faststart). */
export async function encodeMp4(frames: readonly RgbImage[], path: string, opts: VideoEncodeOptions): Promise<void> {
  if (frames.length === 0) throw new Error('sgld: no frames to encode');
  const { width, height } = frames[0]!;
  let i = 0;
  // Pull-based source: ffmpeg's stdin backpressure decides the pace, so frames are not all buffered twice.
  const source = new Readable({
    read() {
      if (i < frames.length) {
        const f = frames[i++]!;
        this.push(Buffer.from(f.data.buffer, f.data.byteOffset, f.data.byteLength));
      } else this.push(null);
    },
  });
  const filters = width % 16 || height % 16 ? [`scale=${to16(width)}:${to16(height)}:flags=bicubic`] : [];
  await new Promise<void>((resolve, reject) => {
    const cmd = ffmpeg(source)
      .setFfmpegPath(ffmpegPath())
      .inputOptions(['-f rawvideo', '-pix_fmt rgb24', `-video_size ${width}x${height}`, `-framerate ${opts.fps}`])
      .outputOptions([
        '-vcodec libx264', '-pix_fmt yuv420p', `-crf ${crfForLevel(opts.level)}`, '-preset fast',
        '-movflags +faststart', ...(filters.length ? [`-vf ${filters.join(',')}`] : []),
      ])
      .format('mp4')
      .on('error', (err: Error, _stdout: string | null, stderr: string | null) => {
        try { if (existsSync(path)) unlinkSync(path); } catch { /* best effort */ }
        reject(new Error(`sgld: ffmpeg failed: ${err.message}${stderr ? `\n${stderr.split('\n').slice(-6).join('\n')}` : ''}`));
      })
      .on('end', () => resolve());
    cmd.save(path);
  });
}
