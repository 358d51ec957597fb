/**
 * Moved to matchmaker/matching/ (one matching for `pcloud match` and the controller).
 * This re-export keeps dev/commands/demo.ts and e2e/federation.e2e.test.ts compiling
 * until their imports point there; delete it then.
 */
export { buildInstance } from '../matching/index.js';
