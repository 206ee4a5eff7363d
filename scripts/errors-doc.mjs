// Rewrites the table of docs/errors.md from src/errors.ts (run after adding a code):
//   node --import tsx scripts/errors-doc.mjs
import fs from 'node:fs';
import { ERROR_CODES } from '../src/errors.ts';
const file = new URL('../docs/errors.md', import.meta.url);
const text = fs.readFileSync(file, 'utf8');
const rows = Object.entries(ERROR_CODES).map(([code, v]) => `| \`${code}\` | ${v.exit} | ${v.http ?? ''} | ${v.meaning} |`);
const table = ['| code | exit | http | meaning |', '| --- | --- | --- | --- |', ...rows].join('\n');
const out = text.replace(/\| code \| exit \|( http \|)? meaning \|\n(\|.*\|\n?)*/, table + '\n');
fs.writeFileSync(file, out);
