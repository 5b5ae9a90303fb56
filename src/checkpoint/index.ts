// Checkpoint reading: safetensors files, sharded indexes and the Diffusers folder layout.
export { CheckpointError } from './errors.js';
export {
  DTYPE_BYTES, MAX_HEADER_BYTES, SafetensorsFile, numelOf, writeSafetensors,
  type SafetensorsDType, type TensorInfo, type TensorToWrite,
} from './safetensors.js';
export { ShardedSafetensors, openTensorSource, type TensorSource } from './sharded.js';
export {
  DiffusersModel, componentKind, openDiffusersModel, requireTensor,
  type ComponentKind, type DiffusersComponent, type OpenDiffusersOptions,
} from './diffusers.js';
