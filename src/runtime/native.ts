export interface NativeLibrary { backend: string }
export function loadNativeLibrary(): NativeLibrary { throw new Error('not yet'); }
