// `sgld generate` end to end on the embedded default model: a real PNG and a real, playable MP4.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import t from 'tap';
import { main } from '../../src/cli/main.js';
import { ffmpegPath } from '../../src/media/video.js';

const dir = mkdtempSync(join(tmpdir(), 'sgld-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('generate writes a PNG image', async (t) => {
  const out = join(dir, 'fox.png');
  t.equal(await main(['generate', '--prompt', 'a red fox', '--output', out, '--num-inference-steps', '3', '--threads', '2']), 0);
  const meta = await sharp(out).metadata();
  t.same([meta.format, meta.width, meta.height], ['png', 64, 64]);
});

t.test('generate writes a playable MP4 video', async (t) => {
  const out = join(dir, 'fox.mp4');
  t.equal(await main(['generate', '--prompt', 'a red fox', '--output', out, '--num-frames', '9', '--num-inference-steps', '2', '--threads', '2']), 0);
  const raw = execFileSync(ffmpegPath(), ['-v', 'error', '-i', out, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], { maxBuffer: 1 << 26 });
  t.equal(raw.length, 9 * 64 * 64 * 3, '9 frames of 64x64 decode back');
});

t.test('same seed, same picture; another seed, another picture', async (t) => {
  const run = async (name: string, seed: string) => {
    const out = join(dir, name);
    t.equal(await main(['generate', '--prompt', 'a red fox', '--output', out, '--num-inference-steps', '2', '--seed', seed]), 0);
    return sharp(out).raw().toBuffer();
  };
  const a = await run('a.png', '7'), b = await run('b.png', '7'), c = await run('c.png', '8');
  t.ok(a.equals(b), 'seed 7 twice: identical pixels');
  t.notOk(a.equals(c), 'seed 8 differs');
});

t.test('usage errors exit 2 with a message', async (t) => {
  t.equal(await main(['generate', '--output', join(dir, 'x.png')]), 2, 'missing --prompt');
  t.equal(await main(['generate', '--prompt', 'x', '--output', join(dir, 'x.gif')]), 2, 'unknown extension');
  t.equal(await main(['generate', '--prompt', 'x', '--output', join(dir, 'x.png'), '--num-frames', '9']), 2, 'video frames into an image');
  t.equal(await main(['generate', '--prompt', 'x', '--output', join(dir, 'x.png'), '--bogus']), 2, 'unknown flag');
  t.equal(await main(['generate', '--prompt', 'x', '--output', join(dir, 'x.png'), '--seed', 'abc']), 2, 'bad integer');
});
