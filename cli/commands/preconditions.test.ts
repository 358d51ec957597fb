// The controller commands' first run: a precondition that does not hold is one line on
// stderr naming it and its fix, and exit code 2 (the cluster-side cases — missing CRDs,
// missing namespace, a real API server going away — are in operator/preconditions.int.test.ts).
import { jest } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RUNTIME_COMMANDS, runCli } from '../program.js';

const dir = mkdtempSync(join(tmpdir(), 'pcloud-preconditions-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `pcloud <args>` in this process; returns its exit code and stderr. */
async function pcloud(args: string[]): Promise<{ code: number | undefined; stderr: string }> {
  const chunks: string[] = [];
  const write = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    chunks.push(String(chunk));
    return true;
  });
  const before = process.exitCode;
  process.exitCode = undefined;
  try {
    await runCli(['node', 'pcloud', ...args], RUNTIME_COMMANDS);
    return { code: process.exitCode as number | undefined, stderr: chunks.join('') };
  } finally {
    write.mockRestore();
    process.exitCode = before;
  }
}

async function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

const FLAGS = {
  operator: ['--peer', 'alice', '--metrics-port', '0', '--log-level', 'silent'],
  matchmaker: ['--metrics-port', '0', '--log-level', 'silent'],
};

describe.each(['operator', 'matchmaker'] as const)('pcloud %s', (command) => {
  test('an unreadable kubeconfig: one line naming the file and --kubeconfig, exit 2', async () => {
    const r = await pcloud([command, ...FLAGS[command], '--kubeconfig', join(dir, 'missing')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `pcloud ${command}: kubeconfig ${join(dir, 'missing')} is unreadable (ENOENT: no such file or directory, open '${join(dir, 'missing')}'); give a readable kubeconfig with --kubeconfig (or KUBECONFIG)\n`,
    );
  });

  test('a kubeconfig without a current cluster: one line, exit 2', async () => {
    const f = join(dir, `empty-${command}`);
    writeFileSync(f, 'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n');
    const r = await pcloud([command, ...FLAGS[command], '--kubeconfig', f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `pcloud ${command}: kubeconfig ${f} has no current cluster; set its current-context, or give another with --kubeconfig (or KUBECONFIG)\n`,
    );
  });

  test('an unreachable cluster: one line naming its address, exit 2', async () => {
    const port = await closedPort();
    const f = join(dir, `closed-${command}`);
    writeFileSync(
      f,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{name: c, cluster: {server: "https://127.0.0.1:' +
          port +
          '", insecure-skip-tls-verify: true}}]',
        'users: [{name: u, user: {token: t}}]',
        'contexts: [{name: x, context: {cluster: c, user: u}}]',
        'current-context: x',
        '',
      ].join('\n'),
    );
    const r = await pcloud([command, ...FLAGS[command], '--kubeconfig', f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `pcloud ${command}: cannot reach the API server at https://127.0.0.1:${port} (connect ECONNREFUSED 127.0.0.1:${port}); ` +
        'point --kubeconfig (or KUBECONFIG) at a running cluster (in a checkout, bin/pcloud dev up starts a local one)\n',
    );
  });
});

test.each([
  [['operator', '--peer', 'Alice'], 'pcloud operator: --peer must be a DNS-1123 label, got Alice: '],
  [['operator', '--peer', 'a', '--unit-cpu', '0'], 'pcloud operator: --unit-cpu must be positive, got 0\n'],
  [
    ['operator', '--peer', 'a', '--home-lan', '10.0.0.0/40'],
    'pcloud operator: --home-lan: 10.0.0.0/40 is not an IPv4 CIDR\n',
  ],
  [
    ['operator', '--peer', 'a', '--lease-namespace', 'No'],
    'pcloud operator: --lease-namespace must be a namespace name (a DNS-1123 label), got No\n',
  ],
  [
    ['matchmaker', '--debounce', 'soon'],
    'pcloud matchmaker: --debounce must be a duration like 30s, 500ms or 2m, got soon\n',
  ],
])('bad flags %j: one line, exit 2', async (args, line) => {
  const r = await pcloud(args);
  expect(r.code).toBe(2);
  expect(r.stderr.startsWith(line)).toBe(true);
  expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
});
