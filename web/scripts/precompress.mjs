// Writes a gzip (level 9) and a brotli (quality 11) copy beside every compressible file of
// dist/ (`x.js` → `x.js.gz`, `x.js.br`) when it is smaller, so the binary that embeds dist/
// serves precompressed bytes and never compresses at request time.
import { readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const dist = new URL('../dist/', import.meta.url).pathname;
const compressible = /\.(js|mjs|css|html|svg|json|map|txt|webmanifest|wasm)$/;
let files = 0;
const walk = (d) => {
  for (const f of readdirSync(d)) {
    const p = join(d, f);
    if (statSync(p).isDirectory()) walk(p);
    else if (/\.(gz|br)$/.test(f)) rmSync(p);
    else if (compressible.test(f)) {
      const b = readFileSync(p);
      const gz = gzipSync(b, { level: 9 });
      const br = brotliCompressSync(b, {
        params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: b.length },
      });
      if (gz.length < b.length) writeFileSync(`${p}.gz`, gz);
      if (br.length < b.length) writeFileSync(`${p}.br`, br);
      files++;
    }
  }
};
walk(dist);
console.log(`precompressed ${files} files (gzip, brotli)`);
