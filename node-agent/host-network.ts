/**
 * The node's links, forwarding database and nftables, through iproute2 (`ip`, `bridge`)
 * and `nft`, the tools every Linux node has and whose JSON output is stable. The agent
 * shells out rather than speaking netlink itself: a netlink library for Node.js would be
 * a native addon, and these commands are what an operator debugging a node runs anyway.
 * Every call is logged at debug level with its arguments.
 */
import { execFile } from 'node:child_process';

export type Runner = (cmd: string, args: readonly string[], stdin?: string) => Promise<string>;

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly stderr: string,
  ) {
    super(`${command}: ${stderr.trim() || 'failed'}`);
  }
}

/** Runs a command with no shell; rejects with its stderr. */
export const execRunner: Runner = (cmd, args, stdin) =>
  new Promise((resolve, reject) => {
    const child = execFile(cmd, [...args], { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new CommandError(`${cmd} ${args.join(' ')}`, stderr || err.message));
      else resolve(stdout);
    });
    if (stdin !== undefined) child.stdin?.end(stdin);
  });

export interface Link {
  name: string;
  /** rtnetlink kind: bridge, vxlan, veth, ...; undefined for a physical device. */
  kind?: string;
  alias?: string;
  master?: string;
  mtu: number;
  up: boolean;
  /** Addresses (IPv4 and IPv6, without prefix length). */
  addresses: string[];
  /** vxlan only. */
  vni?: number;
  local?: string;
}

interface IpLinkJson {
  ifname: string;
  mtu: number;
  flags?: string[];
  ifalias?: string;
  master?: string;
  linkinfo?: { info_kind?: string; info_data?: { id?: number; local?: string } };
  addr_info?: { local: string }[];
}

interface FdbJson {
  mac: string;
  dst?: string;
}

/** The all-zeros MAC: a VXLAN fdb entry with it floods broadcast, unknown unicast and multicast to its dst. */
export const FLOOD_MAC = '00:00:00:00:00:00';

export class HostNetwork {
  constructor(private readonly run: Runner = execRunner) {}

  async links(): Promise<Link[]> {
    const out = await this.run('ip', ['-json', '-details', 'address', 'show']);
    return (JSON.parse(out || '[]') as IpLinkJson[]).map((l) => ({
      name: l.ifname,
      ...(l.linkinfo?.info_kind ? { kind: l.linkinfo.info_kind } : {}),
      ...(l.ifalias ? { alias: l.ifalias } : {}),
      ...(l.master ? { master: l.master } : {}),
      mtu: l.mtu,
      up: (l.flags ?? []).includes('UP'),
      addresses: (l.addr_info ?? []).map((a) => a.local),
      ...(l.linkinfo?.info_data?.id !== undefined ? { vni: l.linkinfo.info_data.id } : {}),
      ...(l.linkinfo?.info_data?.local ? { local: l.linkinfo.info_data.local } : {}),
    }));
  }

  /** A bridge with no addresses: IPv6 address generation off, so the kernel adds no link-local one. */
  async addBridge(name: string, mtu: number, alias: string): Promise<void> {
    await this.run('ip', ['link', 'add', 'name', name, 'type', 'bridge']);
    await this.run('ip', ['link', 'set', 'dev', name, 'addrgenmode', 'none']);
    await this.set(name, { mtu, alias, up: true });
  }

  /** A VXLAN device on the standard port, sourced from local; learning stays on (remote MACs). */
  async addVxlan(name: string, vni: number, local: string, mtu: number, alias: string): Promise<void> {
    await this.run('ip', [
      'link',
      'add',
      'name',
      name,
      'type',
      'vxlan',
      'id',
      String(vni),
      'local',
      local,
      'dstport',
      '4789',
    ]);
    await this.run('ip', ['link', 'set', 'dev', name, 'addrgenmode', 'none']);
    await this.set(name, { mtu, alias });
  }

  async set(name: string, s: { mtu?: number; alias?: string; master?: string; up?: boolean }): Promise<void> {
    const args = ['link', 'set', 'dev', name];
    if (s.mtu !== undefined) args.push('mtu', String(s.mtu));
    if (s.alias !== undefined) args.push('alias', s.alias);
    if (s.master !== undefined) args.push('master', s.master);
    if (s.up) args.push('up');
    await this.run('ip', args);
  }

  async disableAddresses(name: string): Promise<void> {
    await this.run('ip', ['link', 'set', 'dev', name, 'addrgenmode', 'none']);
    await this.run('ip', ['address', 'flush', 'dev', name]);
  }

  async deleteLink(name: string): Promise<void> {
    await this.run('ip', ['link', 'delete', 'dev', name]);
  }

  /** The destinations of the all-zeros entries of a VXLAN device. */
  async floodList(vxlan: string): Promise<string[]> {
    const out = await this.run('bridge', ['-json', 'fdb', 'show', 'dev', vxlan]);
    return (JSON.parse(out || '[]') as FdbJson[])
      .filter((e) => e.mac === FLOOD_MAC && e.dst)
      .map((e) => e.dst!)
      .sort();
  }

  async addFlood(vxlan: string, dst: string): Promise<void> {
    await this.run('bridge', ['fdb', 'append', FLOOD_MAC, 'dev', vxlan, 'dst', dst]);
  }

  async deleteFlood(vxlan: string, dst: string): Promise<void> {
    await this.run('bridge', ['fdb', 'delete', FLOOD_MAC, 'dev', vxlan, 'dst', dst]);
  }

  /** Runs an nft script as one transaction. */
  async nft(script: string): Promise<void> {
    await this.run('nft', ['-f', '-'], script);
  }

  /** `nft -j list table <family> <name>`, or undefined when the table does not exist. */
  async nftTable(family: string, name: string): Promise<unknown[] | undefined> {
    try {
      const out = await this.run('nft', ['-j', 'list', 'table', family, name]);
      return (JSON.parse(out) as { nftables: unknown[] }).nftables;
    } catch (err) {
      if (err instanceof CommandError && /No such file or directory/.test(err.stderr)) return undefined;
      throw err;
    }
  }
}
