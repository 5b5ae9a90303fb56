// Tensor element types and their mapping to sgld.h codes and byte sizes.
import { NativeDType } from './native.js';

export type DType = 'f32' | 'f16' | 'bf16' | 'i32' | 'i64' | 'u8';

const CODES: Record<DType, number> = {
  f32: NativeDType.F32, f16: NativeDType.F16, bf16: NativeDType.BF16,
  i32: NativeDType.I32, i64: NativeDType.I64, u8: NativeDType.U8,
};
const SIZES: Record<DType, number> = { f32: 4, f16: 2, bf16: 2, i32: 4, i64: 8, u8: 1 };

export const dtypeCode = (d: DType): number => CODES[d];
export const dtypeSize = (d: DType): number => SIZES[d];
export const isFloatDType = (d: DType): boolean => d === 'f32' || d === 'f16' || d === 'bf16';

/** Maps a safetensors dtype name (F32, BF16, ...) to ours; throws on types sgld cannot hold. */
export function dtypeFromSafetensors(name: string): DType {
  switch (name) {
    case 'F32': return 'f32';
    case 'F16': return 'f16';
    case 'BF16': return 'bf16';
    case 'I32': return 'i32';
    case 'I64': return 'i64';
    case 'U8': case 'BOOL': return 'u8';
    default: throw new Error(`sgld: unsupported tensor dtype ${name}`);
  }
}
