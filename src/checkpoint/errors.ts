// One error type for everything that is wrong with a checkpoint on disk: it always names the file, and the
// tensor when one is concerned, so a user can find the problem without a debugger.

export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
  constructor(
    message: string,
    /** The file (or folder) the problem is in. */
    readonly file: string,
    /** The tensor concerned, if any. */
    readonly tensor?: string,
  ) {
    super(tensor === undefined ? `${file}: ${message}` : `${file}: tensor '${tensor}': ${message}`);
  }
}
