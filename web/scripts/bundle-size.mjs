// Prints the size of the built SPA: every JS and CSS file of dist/, raw and gzipped, and what
// the first load of the login page / dashboard costs (the entry chunk and what it imports).
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const dist = new URL('../dist/', import.meta.url).pathname;
const files = [];
const walk = (d) => {
  for (const f of readdirSync(d)) {
    const p = join(d, f);
    if (statSync(p).isDirectory()) walk(p);
    else if (/\.(js|css)$/.test(f)) files.push(p);
  }
};
walk(dist);
const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
let raw = 0;
let gz = 0;
let jsGz = 0;
const rows = files.map((p) => {
  const b = readFileSync(p);
  const g = gzipSync(b, { level: 9 }).length;
  raw += b.length;
  gz += g;
  if (p.endsWith('.js')) jsGz += g;
  return { file: p.slice(dist.length), raw: b.length, gz: g };
});
rows.sort((a, b) => b.gz - a.gz);
for (const r of rows) console.log(`${r.file.padEnd(48)} ${kb(r.raw).padStart(10)} ${kb(r.gz).padStart(10)} gz`);

// first load: index.html's module script and its static imports, transitively
const html = readFileSync(join(dist, 'index.html'), 'utf8');
const entry = [...html.matchAll(/(?:src|href)="\/(assets\/[^"]+\.(?:js|css))"/g)].map((m) => m[1]);
const seen = new Set();
const visit = (f) => {
  if (seen.has(f)) return;
  seen.add(f);
  if (!f.endsWith('.js')) return;
  const src = readFileSync(join(dist, f), 'utf8');
  for (const m of src.matchAll(/(?:import|from)\s*["']\.\/([^"']+\.js)["']/g)) visit(`assets/${m[1]}`);
};
entry.forEach(visit);
let first = 0;
for (const f of seen) first += gzipSync(readFileSync(join(dist, f)), { level: 9 }).length;
console.log(`total: ${kb(raw)} raw, ${kb(gz)} gzipped (JS ${kb(jsGz)} gzipped)`);
console.log(`first load (entry + static imports, ${seen.size} files): ${kb(first)} gzipped`);
