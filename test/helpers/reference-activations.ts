// float64 references of the activations (torch's formulas), shared by the op tests.
import { Activation } from '../../src/runtime/native.js';

/** erf in float64: its Taylor series near 0, a continued fraction of erfc beyond 2.5. */
export function erf64(x: number): number {
  const z = Math.abs(x);
  let r: number;
  if (z < 2.5) {
    let term = z, sum = z;
    for (let n = 1; n < 80; n++) {
      term *= -z * z / n;
      sum += term / (2 * n + 1);
    }
    r = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    // erfc(z) = exp(-z^2)/sqrt(pi) / (z + (1/2)/(z + 1/(z + (3/2)/(z + 2/(z + ...))))), evaluated bottom-up.
    let f = z;
    for (let n = 60; n >= 1; n--) f = z + (n / 2) / f;
    r = 1 - Math.exp(-z * z) / Math.sqrt(Math.PI) / f;
  }
  return x < 0 ? -r : r;
}

/** torch's activations (SGLD_ACT_*) in float64. */
export function activate64(x: number, act: number): number {
  switch (act) {
    case Activation.GELU_TANH: return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
    case Activation.GELU_ERF: return 0.5 * x * (1 + erf64(x / Math.SQRT2));
    case Activation.SILU: return x / (1 + Math.exp(-x));
    case Activation.RELU: return Math.max(x, 0);
    default: return x;
  }
}
