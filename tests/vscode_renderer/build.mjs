// Builds the test page of tests/test_vscode_widgets.py into dist/vscode_host/ (ignored by git):
//   index.html     host.html
//   host.js        host.js bundled with @jupyterlab/services by esbuild
//   ipywidgets.js  @vscode/jupyter-ipywidgets8's dist/ipywidgets.js, unmodified (VS Code's widget manager)
//   require.js     requirejs, which that bundle needs on the page
// Run `npm ci && npm run build` here (.ci/run does).
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'dist', 'vscode_host');
const require = createRequire(import.meta.url);

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await esbuild.build({
  entryPoints: [join(here, 'host.js')],
  outfile: join(out, 'host.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2020',
  external: ['./ipywidgets.js'], // loaded at run time, as VS Code loads it
  logLevel: 'warning',
});
copyFileSync(join(here, 'host.html'), join(out, 'index.html'));
copyFileSync(require.resolve('@vscode/jupyter-ipywidgets8/dist/ipywidgets.js'), join(out, 'ipywidgets.js'));
copyFileSync(require.resolve('requirejs/require.js'), join(out, 'require.js'));
console.log(`built ${out}`);
