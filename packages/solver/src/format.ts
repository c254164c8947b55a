/**
 * Numbers as C++ iostreams print them by default (`%g`, 6 significant digits), because Caffe's
 * log parsers (parse_log.py, plot_training_log.py) read lines such as `loss = 0.0862203`.
 */
export function formatG(x: number, precision = 6): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  // The exponent after rounding to `precision` digits decides between fixed and scientific.
  const exp = Number(x.toExponential(precision - 1).split('e')[1]);
  if (exp < -4 || exp >= precision) {
    const [mant, e] = x.toExponential(precision - 1).split('e') as [string, string];
    const sign = e.startsWith('-') ? '-' : '+';
    const digits = e.replace(/^[+-]/, '').padStart(2, '0');
    return `${stripZeros(mant)}e${sign}${digits}`;
  }
  return stripZeros(x.toFixed(Math.max(0, precision - 1 - exp)));
}

function stripZeros(s: string): string {
  if (!s.includes('.')) return s;
  return s.replace(/0+$/, '').replace(/\.$/, '');
}
