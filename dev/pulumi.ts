// A Pulumi workspace for tests: the pulumi CLI and Kubernetes provider that `make setup`
// built from their Go modules (.cache/bin), a PULUMI_HOME and a file backend in a
// folder of their own, and an Automation API LocalWorkspace over them.
//
// Nothing is downloaded: the provider is installed into PULUMI_HOME from the local
// binary (`pulumi plugin install --file`) at the version @pulumi/kubernetes asks for,
// ambient plugins (PATH) are ignored and automatic plugin acquisition is off, so a
// missing plugin is an error, never a download. `pulumi login --local` would write to
// root's ~/.pulumi whatever HOME says: the backend is PULUMI_BACKEND_URL=file://<folder>.
//
// Clean-up: dispose() ends the CLI and provider processes still running under this
// PULUMI_HOME and deletes the folder; a folder left by a test process that died (its owner
// pid is gone, or the folder itself) is swept, with its processes, by the next create().
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LocalWorkspaceOptions, ProjectSettings } from '@pulumi/pulumi/automation/index.js';
import { PulumiCommand } from '@pulumi/pulumi/automation/index.js';
import { BIN_DIR } from './control-plane.js';
import { repoRoot } from './paths.js';
import type { InlineRequest, InlineResult } from './pulumi-inline.js';
import { isAlive, runCommand } from './run-command.js';

const DIR_PREFIX = 'pcloud-pulumi-';
const PULUMI_BIN = join(BIN_DIR, 'pulumi');
const PROVIDER_BIN = join(BIN_DIR, 'pulumi-resource-kubernetes');

/** The provider version the @pulumi/kubernetes SDK registers its resources with. */
export const KUBERNETES_PROVIDER_VERSION = (
  JSON.parse(
    readFileSync(join(repoRoot, 'node_modules', '@pulumi', 'kubernetes', 'package.json'), 'utf8'),
  ) as {
    version: string;
  }
).version;

/** Processes whose PULUMI_HOME (or binary path) lies in `dir`, a folder of ours. */
function processesUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const argv0 = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0')[0] ?? '';
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      if (argv0.startsWith(`${dir}/`) || environ.includes(`PULUMI_HOME=${join(dir, 'home')}`))
        pids.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Removes workspaces (and their processes) of test processes that are gone. */
function sweepOrphans(): void {
  for (const entry of readdirSync(tmpdir())) {
    if (!entry.startsWith(DIR_PREFIX)) continue;
    const dir = join(tmpdir(), entry);
    let owner: number;
    try {
      owner = (JSON.parse(readFileSync(join(dir, 'owner.json'), 'utf8')) as { owner: number }).owner;
    } catch {
      continue; // being created right now
    }
    if (isAlive(owner)) continue;
    killAll(processesUnder(dir));
    rmSync(dir, { recursive: true, force: true });
  }
  // Processes whose folder was removed before they were ended.
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8');
      const home = new RegExp(`PULUMI_HOME=(${tmpdir()}/${DIR_PREFIX}[^/\0]+)/home`).exec(environ)?.[1];
      if (home !== undefined && !existsSync(home)) killAll([Number(entry)]);
    } catch {
      // gone, or not ours to read
    }
  }
}

export class PulumiWorkspace {
  private constructor(
    /** The folder holding everything: home/ (PULUMI_HOME), backend/ (the state), work/. */
    readonly dir: string,
    readonly command: PulumiCommand,
  ) {}

  get homeDir(): string {
    return join(this.dir, 'home');
  }
  get backendDir(): string {
    return join(this.dir, 'backend');
  }
  /** The project folder (Pulumi.yaml, Pulumi.<stack>.yaml). */
  get workDir(): string {
    return join(this.dir, 'work');
  }

  /** The environment of every pulumi command of this workspace. */
  get env(): Record<string, string> {
    return {
      PULUMI_HOME: this.homeDir,
      PULUMI_BACKEND_URL: `file://${this.backendDir}`,
      PULUMI_CONFIG_PASSPHRASE: 'personal-cloud-test',
      PULUMI_SKIP_UPDATE_CHECK: 'true',
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: 'true',
      PULUMI_IGNORE_AMBIENT_PLUGINS: 'true',
      PULUMI_SKIP_CONFIRMATIONS: 'true',
    };
  }

  static async create(name = 'test'): Promise<PulumiWorkspace> {
    for (const bin of [PULUMI_BIN, PROVIDER_BIN])
      if (!existsSync(bin)) throw new Error(`${bin} is missing: run 'make setup' first`);
    sweepOrphans();
    const dir = mkdtempSync(join(tmpdir(), `${DIR_PREFIX}${name}-`));
    writeFileSync(join(dir, 'owner.json'), JSON.stringify({ owner: process.pid }));
    const ws = new PulumiWorkspace(dir, await PulumiCommand.get({ root: join(repoRoot, '.cache') }));
    try {
      for (const sub of ['home', 'backend', 'work']) mkdirSync(join(dir, sub));
      const res = await runCommand(
        PULUMI_BIN,
        [
          'plugin',
          'install',
          'resource',
          'kubernetes',
          `v${KUBERNETES_PROVIDER_VERSION}`,
          '--file',
          PROVIDER_BIN,
        ],
        { env: { ...process.env, ...ws.env } },
      );
      if (res.code !== 0) throw new Error(`pulumi plugin install --file ${PROVIDER_BIN}: ${res.stderr}`);
    } catch (err) {
      ws.dispose();
      throw err;
    }
    return ws;
  }

  /** The plugins PULUMI_HOME holds, as `pulumi plugin ls --json` lists them. */
  async plugins(): Promise<{ name: string; kind: string; version: string }[]> {
    const res = await runCommand(PULUMI_BIN, ['plugin', 'ls', '--json'], {
      env: { ...process.env, ...this.env },
    });
    if (res.code !== 0) throw new Error(`pulumi plugin ls: ${res.stderr}`);
    return JSON.parse(res.stdout) as { name: string; kind: string; version: string }[];
  }

  /** Options for LocalWorkspace.createOrSelectStack with this workspace's CLI, home, backend and folder. */
  options(projectSettings?: ProjectSettings): LocalWorkspaceOptions {
    return {
      workDir: this.workDir,
      pulumiHome: this.homeDir,
      pulumiCommand: this.command,
      envVars: this.env,
      secretsProvider: 'passphrase',
      ...(projectSettings ? { projectSettings } : {}),
    };
  }

  /**
   * Runs `op` on a stack of this workspace with an inline program, `programExport` of
   * `programModule`, in a Node process of its own (dev/pulumi-inline.ts says why). The
   * stack must exist (create it with LocalWorkspace and this.options()).
   */
  async run(
    op: InlineRequest['op'],
    stack: { stackName: string; projectName: string },
    program: { module: string; export: string },
  ): Promise<InlineResult> {
    const request: InlineRequest = {
      op,
      ...stack,
      programModule: program.module,
      programExport: program.export,
      cliRoot: join(repoRoot, '.cache'),
      options: {
        workDir: this.workDir,
        pulumiHome: this.homeDir,
        envVars: this.env,
        secretsProvider: 'passphrase',
      },
    };
    const res = await runCommand(
      process.execPath,
      ['--import', join(repoRoot, 'dev', 'ts-loader.mjs'), join(repoRoot, 'dev', 'pulumi-inline.ts')],
      // Its environment names this PULUMI_HOME, so a sweep finds it too.
      { input: JSON.stringify(request), env: { ...process.env, ...this.env }, cwd: repoRoot },
    );
    try {
      return JSON.parse(res.stdout) as InlineResult;
    } catch {
      throw new Error(`pulumi ${op} (dev/pulumi-inline.ts) exited ${res.code}: ${res.stdout}${res.stderr}`);
    }
  }

  /** Ends what still runs under this PULUMI_HOME and deletes the folder. */
  dispose(): void {
    killAll(processesUnder(this.dir));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
