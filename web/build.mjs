// Builds the console into OUTDIR (argument; default dist/): app.js (one bundle, no inline
// script, so the controller's Content-Security-Policy can forbid inline script), app.css and
// index.html. Type errors fail the build first (tsc --noEmit): esbuild only strips types.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const outdir = resolve(process.argv[2] ?? join(here, 'dist'));
execFileSync(process.execPath, [join(here, 'node_modules/typescript/bin/tsc'), '--noEmit', '-p', here],
             { stdio: 'inherit' });
mkdirSync(outdir, { recursive: true });
await build({
  entryPoints: [join(here, 'src/main.tsx')],
  bundle: true,
  minify: true,
  sourcemap: false,
  target: 'es2020',
  format: 'esm',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outfile: join(outdir, 'app.js'),
  logLevel: 'warning',
});
for (const file of ['index.html', 'app.css', 'favicon.svg']) copyFileSync(join(here, 'src', file), join(outdir, file));
console.log(`console built into ${outdir}`);
