/**
 * A number as C++ streams print it by default (`%g`, 6 significant digits), so that log lines read
 * like Caffe's: 0.5 → "0.5", 1e-05 → "1e-05", 127.33333 → "127.333".
 */
export function formatG(x: number, precision = 6): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf';
  if (x === 0) return '0';
  const rounded = Number(x.toPrecision(precision));
  const exp = Math.floor(Math.log10(Math.abs(rounded)));
  const trim = (s: string) => (s.includes('.') ? s.replace(/\.?0+$/, '') : s);
  if (exp < -4 || exp >= precision) {
    const [mant, e] = rounded.toExponential(precision - 1).split('e') as [string, string];
    const n = Number(e);
    return `${trim(mant)}e${n < 0 ? '-' : '+'}${String(Math.abs(n)).padStart(2, '0')}`;
  }
  return trim(rounded.toFixed(Math.max(0, precision - 1 - exp)));
}
