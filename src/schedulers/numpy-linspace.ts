// numpy.linspace in float64, element for element: the schedules are built with it before they become float32,
// and a different rounding of the grid can move an int64 timestep across an integer.

/**
 * `np.linspace(start, stop, num)` (endpoint=True) as numpy 1.24 computes it: y[i] = i * step + start with
 * step = (stop - start) / (num - 1), two roundings each, and the last element set to `stop` exactly.
 */
export function linspace(start: number, stop: number, num: number): Float64Array {
  if (!Number.isInteger(num) || num < 0) throw new RangeError(`linspace: num must be a non-negative integer, got ${num}`);
  const out = new Float64Array(num);
  const div = num - 1;
  const delta = stop - start;
  if (div > 0) {
    const step = delta / div;
    // numpy divides first and multiplies by delta when the step underflows to zero.
    for (let i = 0; i < num; i++) out[i] = (step === 0 ? (i / div) * delta : i * step) + start;
    out[num - 1] = stop;
  } else if (num === 1) {
    out[0] = start;
  }
  return out;
}
