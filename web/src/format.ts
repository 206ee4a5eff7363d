// Small formatting helpers shared by the pages.

export function formatBytes(n: number): string {
  const abs = Math.abs(n);
  if (abs < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

export function formatDelta(n: number | null): string {
  if (n === null) return '';
  if (n === 0) return '±0';
  return (n > 0 ? '+' : '−') + formatBytes(Math.abs(n));
}

export function formatMode(m: number | undefined): string {
  return m === undefined ? '?' : (m & 0o7777).toString(8).padStart(4, '0');
}

export function short(commit: string | null | undefined): string {
  return commit ? commit.slice(0, 12) : '—';
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC');
}
