#!/usr/bin/env node
// `bin/pcloud` in a source checkout: the runtime commands plus the development ones,
// `pcloud dev up|down` (a local control plane) and `pcloud demo` (a local federation).
// They live here, above cli/, because they need the control-plane harness, which the
// image and the runtime dependencies do not carry.
import { RUNTIME_COMMANDS, runCli } from '../cli/program.js';

await runCli(process.argv, {
  demo: async () => (await import('./commands/demo.js')).registerDemoCommand,
  dev: async () => (await import('./commands/dev.js')).registerDevCommand,
  ...RUNTIME_COMMANDS,
});
