// Image encoding and decoding through sharp (libvips).
import sharp from 'sharp';
import { jpegQuality, pngZlibLevel } from './quality.js';

export type ImageFormat = 'png' | 'jpeg' | 'webp';

/** Packed 8-bit RGB pixels, row-major, `width * height * 3` bytes. */
export interface RgbImage { width: number; height: number; data: Uint8Array }

export const imageExtension = (f: ImageFormat): string => (f === 'jpeg' ? 'jpg' : f);
export const imageContentType = (f: ImageFormat): string => `image/${f}`;

/** Encodes RGB pixels at a 0..100 quality level (spec 4.3: PNG stays lossless at every level). */
export async function encodeImage(img: RgbImage, format: ImageFormat, level: number): Promise<Buffer> {
  const base = sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), {
    raw: { width: img.width, height: img.height, channels: 3 },
  });
  switch (format) {
    case 'png': return base.png({ compressionLevel: pngZlibLevel(level) }).toBuffer();
    case 'jpeg': return base.jpeg({ quality: jpegQuality(level) }).toBuffer();
    case 'webp': return base.webp({ quality: jpegQuality(level) }).toBuffer();
  }
}

/** Decodes an uploaded image (PNG/JPEG/WebP/...) to RGB, flattening alpha onto white; rejects non-images. */
export async function decodeImage(bytes: Uint8Array, resizeTo?: { width: number; height: number }): Promise<RgbImage> {
  let pipeline = sharp(bytes, { failOn: 'error' }).flatten({ background: '#ffffff' }).removeAlpha().toColorspace('srgb');
  if (resizeTo) pipeline = pipeline.resize(resizeTo.width, resizeTo.height, { fit: 'cover' });
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}
