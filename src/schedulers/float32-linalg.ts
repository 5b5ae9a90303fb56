// The little float32 arithmetic UniPC does on scalars (diffusers keeps them in 0-d float32 tensors): rounded
// elementary functions and the small linear solve behind `torch.linalg.solve`.

export const f32 = Math.fround;

/** torch.pow(x, k) for a float32 x and a small integer k: torch special-cases 0..3 as repeated products. */
export function pow32(x: number, k: number): number {
  switch (k) {
    case 0: return 1;
    case 1: return x;
    case 2: return f32(x * x);
    case 3: return f32(f32(x * x) * x);
    default: return f32(Math.pow(x, k));
  }
}

/**
 * Solves A x = b in float32 the way torch.linalg.solve (torch 1.13, LAPACK getrf + getrs) does on CPU, `a` being
 * row-major n x n. torch picks one of two factorizations by memory layout, and the choice shows in the last bit:
 * - `transposedLU` (A contiguous, e.g. a freshly stacked matrix): torch hands its row-major A to LAPACK as the
 *   column-major A^T, factors P A^T = L U and solves with trans = 'T': U^T y = b, L^T z = y, x = P^T z.
 * - otherwise (A a strided slice): A is copied column-major, P A = L U, then L y = P b and U x = y.
 * Both pivot on the first largest entry and scale the multipliers by the pivot's reciprocal (getf2); every
 * operation rounds to float32. Against diffusers' UniPC goldens this reproduces the order-2 corrector bit for
 * bit; systems of order 3 and more can still differ by an ulp from OpenBLAS' dot-product ordering.
 */
export function solveFloat32(a: readonly (readonly number[])[], b: readonly number[],
  options: { transposedLU: boolean }): number[] {
  const n = b.length;
  if (a.length !== n || a.some((row) => row.length !== n)) throw new RangeError('solveFloat32: A must be n x n with n = b.length');
  const { transposedLU } = options;
  // m: the matrix LAPACK factors, overwritten by L (below the diagonal, unit) and U.
  const m = transposedLU ? a.map((_, i) => a.map((row) => f32(row[i]!))) : a.map((row) => row.map(f32));
  const pivots: number[] = [];
  for (let col = 0; col < n; col++) {
    let pivotRow = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(m[r]![col]!) > Math.abs(m[pivotRow]![col]!)) pivotRow = r;
    pivots.push(pivotRow);
    if (pivotRow !== col) [m[col], m[pivotRow]] = [m[pivotRow]!, m[col]!];
    const pivot = m[col]![col]!;
    if (pivot === 0) throw new RangeError('solveFloat32: the matrix is singular');
    const inverse = f32(1 / pivot);
    for (let r = col + 1; r < n; r++) {
      const row = m[r]!;
      const factor = f32(row[col]! * inverse);
      row[col] = factor;
      for (let c = col + 1; c < n; c++) row[c] = f32(row[c]! - f32(factor * m[col]![c]!));
    }
  }
  const x = b.map(f32);
  if (transposedLU) {
    for (let i = 0; i < n; i++) { // U^T y = b
      let t = x[i]!;
      for (let k = 0; k < i; k++) t = f32(t - f32(m[k]![i]! * x[k]!));
      x[i] = f32(t / m[i]![i]!);
    }
    for (let i = n - 1; i >= 0; i--) { // L^T z = y, unit diagonal
      let t = x[i]!;
      for (let k = i + 1; k < n; k++) t = f32(t - f32(m[k]![i]! * x[k]!));
      x[i] = t;
    }
    for (let i = n - 1; i >= 0; i--) { // x = P^T z
      const p = pivots[i]!;
      if (p !== i) [x[i], x[p]] = [x[p]!, x[i]!];
    }
    return x;
  }
  for (let i = 0; i < n; i++) { // P b
    const p = pivots[i]!;
    if (p !== i) [x[i], x[p]] = [x[p]!, x[i]!];
  }
  for (let r = 1; r < n; r++) { // L y = P b, unit diagonal
    for (let c = 0; c < r; c++) x[r] = f32(x[r]! - f32(m[r]![c]! * x[c]!));
  }
  for (let r = n - 1; r >= 0; r--) { // U x = y
    x[r] = f32(x[r]! / m[r]![r]!);
    for (let above = 0; above < r; above++) x[above] = f32(x[above]! - f32(x[r]! * m[above]![r]!));
  }
  return x;
}
