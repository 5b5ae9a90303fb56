// sgld's public embedding API. The runtime (native library, tensors) is exported now; the kernel and the
// job API join it as they land.
export { loadNativeLibrary, type NativeLibrary } from './runtime/native.js';
