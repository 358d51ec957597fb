// One Automation API operation (up, preview or destroy) of an inline Pulumi program, in a
// Node process of its own: `node --import ./dev/ts-loader.mjs dev/pulumi-inline.ts`, the
// request as JSON on stdin, the result as JSON on stdout (PulumiWorkspace.run in
// dev/pulumi.ts spawns it).
//
// Why not inside Jest: when a program throws (a bad config), Pulumi's SDK leaves
// rejected promises of its own unhandled; its language server collects them with
// process-wide handlers, but in Jest's sandbox those handlers never see them and Jest's
// own count them as failures of the running test. Here the program runs in plain Node,
// as a user's Pulumi program does.
import { readFileSync } from 'node:fs';
import {
  LocalWorkspace,
  PulumiCommand,
  type LocalWorkspaceOptions,
} from '@pulumi/pulumi/automation/index.js';

export interface InlineRequest {
  op: 'up' | 'preview' | 'destroy';
  stackName: string;
  projectName: string;
  /** The module whose export `program` returns the stack's outputs (e.g. deploy/pulumi/program.ts). */
  programModule: string;
  programExport: string;
  /** The root of the pulumi CLI installation (its bin/pulumi). */
  cliRoot: string;
  options: Omit<LocalWorkspaceOptions, 'pulumiCommand' | 'program'>;
}

export type InlineResult =
  | {
      ok: true;
      /** up and destroy: the engine's summary; preview: its changeSummary as resourceChanges. */
      resourceChanges: Record<string, number>;
      outputs: Record<string, unknown>;
      stdout: string;
    }
  | { ok: false; error: string };

async function main(): Promise<InlineResult> {
  const req = JSON.parse(readFileSync(0, 'utf8')) as InlineRequest;
  const mod = (await import(req.programModule)) as Record<string, () => Record<string, unknown>>;
  const program = mod[req.programExport];
  if (typeof program !== 'function')
    throw new Error(`${req.programModule} has no function ${req.programExport}`);
  const stack = await LocalWorkspace.selectStack(
    { stackName: req.stackName, projectName: req.projectName, program: () => Promise.resolve(program()) },
    { ...req.options, pulumiCommand: await PulumiCommand.get({ root: req.cliRoot }) },
  );
  switch (req.op) {
    case 'preview': {
      const res = await stack.preview();
      return { ok: true, resourceChanges: res.changeSummary, outputs: {}, stdout: res.stdout };
    }
    case 'up': {
      const res = await stack.up();
      const outputs = Object.fromEntries(
        Object.entries(res.outputs).map(([k, v]) => [k, v.value as unknown]),
      );
      return { ok: true, resourceChanges: res.summary.resourceChanges ?? {}, outputs, stdout: res.stdout };
    }
    case 'destroy': {
      const res = await stack.destroy();
      return {
        ok: true,
        resourceChanges: res.summary.resourceChanges ?? {},
        outputs: {},
        stdout: res.stdout,
      };
    }
  }
}

main().then(
  (result) => process.stdout.write(JSON.stringify(result)),
  (err: unknown) =>
    process.stdout.write(JSON.stringify({ ok: false, error: String((err as Error)?.message ?? err) })),
);
