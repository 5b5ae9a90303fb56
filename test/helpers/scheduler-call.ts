// What a fixture scheduler case's `call` does beyond set_timesteps(N): the pipeline's `s.sigma_min = ...` and a
// `mu=` argument. `call` is Python for people (comments after '#' are ignored), or an object with the same fields.
export function schedulerCallArguments(call: unknown): { sigmaMin?: number; mu?: number } {
  if (call !== null && typeof call === 'object') {
    const o = call as Record<string, unknown>;
    return {
      ...(typeof o['sigma_min'] === 'number' ? { sigmaMin: o['sigma_min'] } : {}),
      ...(typeof o['mu'] === 'number' ? { mu: o['mu'] } : {}),
    };
  }
  if (typeof call !== 'string') return {};
  const code = call.replace(/#.*$/gm, '');
  const number = '([-+]?[0-9]*\\.?[0-9]+(?:[eE][-+]?[0-9]+)?)';
  const sigmaMin = new RegExp(`\\.sigma_min\\s*=\\s*${number}`).exec(code);
  const mu = new RegExp(`set_timesteps\\([^)]*\\bmu\\s*=\\s*${number}`).exec(code);
  return {
    ...(sigmaMin ? { sigmaMin: Number(sigmaMin[1]) } : {}),
    ...(mu ? { mu: Number(mu[1]) } : {}),
  };
}
