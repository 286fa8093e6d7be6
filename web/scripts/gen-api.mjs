// Generates src/api/openapi.gen.ts, the server's wire types, from openapi.json (the document
// the server serves at /api/v1/openapi.json; host/api/tests/openapi_document.rs fails when the
// two differ, and scripts/api-types rewrites it). src/api/types.ts names what the SPA uses.
// `npm run build` and `npm run typecheck` run this first, so the type check always sees the
// current document. The generator, openapi-typescript, lives in tools/openapi-typescript with
// its own TypeScript 5 (it drives TypeScript's compiler API, which TypeScript 7 does not have);
// scripts/setup installs it.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { constraintsModule } from './constraints.mjs';
import { fileURLToPath } from 'node:url';

const web = fileURLToPath(new URL('..', import.meta.url));
const cli = `${web}tools/openapi-typescript/node_modules/openapi-typescript/bin/cli.js`;
if (!existsSync(cli)) {
  console.error(`gen-api: ${cli} is missing: run scripts/setup (it installs web/tools/openapi-typescript)`);
  process.exit(1);
}
// --empty-objects-unknown: a schema of free-form JSON (a flow graph, a node's config) is
// `Record<string, unknown>`, not an object that can hold nothing.
const args = [cli, 'openapi.json', '--empty-objects-unknown', '--output', 'src/api/openapi.gen.ts'];
const run = spawnSync(process.execPath, args, { cwd: web, stdio: ['ignore', 'ignore', 'inherit'] });
if (run.status !== 0) process.exit(run.status ?? 1);
// The forms' hints and required markers come from the same document (src/api/constraints.ts
// reads this): written only when it changed, so the build hash stays put.
const doc = JSON.parse(readFileSync(`${web}openapi.json`, 'utf8'));
const out = `${web}src/api/constraints.gen.ts`;
const text = constraintsModule(doc);
if (!existsSync(out) || readFileSync(out, 'utf8') !== text) writeFileSync(out, text);
process.exit(0);
