/**
 * The Pulumi program of one home (Pulumi.yaml next to this file runs its compiled form,
 * dist/deploy/pulumi/index.js): see program.ts, and docs/install.md, "Pulumi", for the
 * commands.
 */
import { homeProgram } from './program.js';

export const { namespace, release, offer, requests, joinSecret } = homeProgram();
