/**
 * `pcloud demo --once --json` as a user runs it (the built CLI, stdin not a terminal):
 * a matchmaker and three homes come up, examples/ are applied at every home, and the
 * one JSON object it prints reports a request-optimal federation.
 */
import { execFileSync } from 'node:child_process';
import { DEV_CLI } from '../dev/federation-harness.js';
import { repoRoot } from '../dev/paths.js';
import { runCommand, type CommandResult } from '../dev/run-command.js';

beforeAll(() => {
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: repoRoot, stdio: 'inherit' });
});

function runDemo(args: string[]): Promise<CommandResult> {
  return runCommand(process.execPath, [DEV_CLI, 'demo', ...args], { cwd: repoRoot });
}

it('prints exactly the JSON summary, with assigned == optimal, and exits', async () => {
  const res = await runDemo(['--once', '--json']);
  expect(res.stderr).toContain('Steady after');
  expect(res.code).toBe(0);
  const out = JSON.parse(res.stdout) as Record<string, unknown>;
  expect(Object.keys(out).sort()).toEqual([
    'assigned',
    'offered',
    'optimal',
    'peers',
    'placements',
    'requested',
  ]);
  expect(out.peers).toEqual(['alice', 'bob', 'carol']);
  expect(out.assigned).toBe(out.optimal);
  expect(out.optimal).toBeGreaterThan(0);
  expect(out.requested as number).toBeGreaterThanOrEqual(out.assigned as number);
  expect(out.offered as number).toBeGreaterThanOrEqual(out.assigned as number);
  const placements = out.placements as Record<string, unknown>[];
  expect(placements.reduce((t, p) => t + (p.units as number), 0)).toBe(out.assigned);
  for (const p of placements) {
    expect(Object.keys(p).sort()).toEqual(['host', 'request', 'requester', 'units', 'vms']);
    expect(p.host).not.toBe(p.requester);
    const vms = p.vms as Record<string, unknown>[];
    expect(vms).toHaveLength(p.units as number);
    for (const vm of vms) {
      expect(Object.keys(vm).sort()).toEqual(['hostname', 'name', 'phase']);
      expect(vm.hostname).toBe(`${String(vm.name)}.${String(p.requester)}.${String(p.host)}.pcloud.test`);
    }
  }
});
