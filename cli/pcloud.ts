#!/usr/bin/env node
// `pcloud` as shipped in the image: the runtime commands (see program.ts).
import { RUNTIME_COMMANDS, runCli } from './program.js';

await runCli(process.argv, RUNTIME_COMMANDS);
