/**
 * The dependency rules of ../shared/ARCHITECTURE.md, checked by `npm run check:deps` (part of `npm test`).
 *
 *   core <- model <- engine <- trust <- swarm <- economy <- ui, embed, cli-tab (browser pages)
 *   core <- mesh <- swarm                                           nodejs (Node only: relay, cli, models dir)
 *
 * trust sits under swarm (ARCHITECTURE.md drew it above): the swarm's engine runs the spot checks
 * and its routes skip revoked peers, so it uses trust's checker and reputation; trust itself
 * knows nothing of hops, streams or routes (the swarm hands it executors).
 *
 * Each layer imports only the layers below it; test helpers (testing/), lab pages and harnesses
 * (lab/) and build tools (tools/) stay out of the product; browser code never reaches Node-only code.
 * Unit tests (*.test.ts beside the code) may use testing/.
 */
const TEST = '\\.test(-d)?\\.ts$'
const layer = (name, path, allowed) => ({
  name: `${name}-imports-only-${allowed.join('-')}`,
  comment: `src/${name} may import only ${allowed.map((a) => `src/${a}`).join(', ')}`,
  severity: 'error',
  from: { path: `^src/${path}/`, pathNot: TEST },
  to: { path: '^src/', pathNot: `^src/(${[path, ...allowed].join('|')})/` },
})

module.exports = {
  forbidden: [
    layer('core', 'core', []),
    layer('model', 'model', ['core']),
    layer('engine', 'engine', ['core', 'model']),
    layer('mesh', 'mesh', ['core']),
    layer('trust', 'trust', ['core', 'model', 'engine']),
    layer('swarm', 'swarm', ['core', 'model', 'engine', 'mesh', 'trust']),
    layer('economy', 'economy', ['core', 'model', 'engine', 'mesh', 'swarm', 'trust']),
    layer('ui', 'ui', ['core', 'model', 'engine', 'mesh', 'swarm', 'trust', 'economy']),
    layer('embed', 'embed', ['core', 'model', 'engine', 'mesh', 'swarm', 'trust', 'economy']),
    layer('cli-tab', 'cli-tab', ['core', 'model', 'engine', 'mesh', 'swarm', 'trust', 'economy']),
    {
      name: 'product-never-imports-test-lab-or-tools',
      comment: 'src/ (tests aside) and workers/ ship in the site or the package: no test helpers, lab pages or build tools',
      severity: 'error',
      from: { path: '^(src|workers)/', pathNot: TEST },
      to: { path: '^(testing|lab|tools|e2e|bench)/' },
    },
    {
      name: 'browser-code-never-imports-node-only-code',
      comment: 'only src/nodejs may reach Node-only code (its own modules)',
      severity: 'error',
      from: { path: '^(src|workers)/', pathNot: ['^src/nodejs/', TEST] },
      to: { path: '^src/nodejs/' },
    },
    {
      name: 'browser-code-never-imports-node-builtins',
      comment: 'node:fs, node:path, ... exist only in Node (src/nodejs, tests, tools, lab harnesses)',
      severity: 'error',
      from: { path: '^(src|workers)/', pathNot: ['^src/nodejs/', TEST] },
      to: { dependencyTypes: ['core'] },
    },
    {
      name: 'nodejs-uses-browser-pages-for-types-only',
      comment: 'the CLI drives src/cli-tab in Chromium; it may name its request types, never run its code',
      severity: 'error',
      from: { path: '^src/nodejs/' },
      to: { path: '^src/(ui|embed|cli-tab)/', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'workers-only-start-the-engine-worker',
      severity: 'error',
      from: { path: '^workers/' },
      to: { path: '^src/', pathNot: '^src/engine/worker/' },
    },
    {
      name: 'bench-does-not-import-e2e',
      comment: 'benchmarks use lab/ (pages, harnesses) and testing/, never the e2e suites',
      severity: 'error',
      from: { path: '^bench/' },
      to: { path: '^e2e/' },
    },
    {
      name: 'helpers-do-not-import-test-suites',
      severity: 'error',
      from: { path: '^(testing|lab|tools)/' },
      to: { path: '(^e2e/|\\.(test|spec)\\.ts$)' },
    },
    {
      name: 'no-circular',
      comment: 'modules form a tree, not a knot',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^node_modules|^dist)' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'], extensions: ['.ts', '.tsx', '.js', '.mjs', '.json'] },
  },
}
