// Container images built on this machine, without a Docker engine or a registry: the
// pinned `oci-image` tool (go-containerregistry, tools/images) writes a single-layer
// image tarball from local files, reproducibly (fixed times and owners), which
// `ctr images import` loads into a node's containerd. Tarballs are cached in
// .cache/images under a hash of everything that goes into them.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN_DIR } from './control-plane.js';
import { repoRoot } from './paths.js';
import { runCommand } from './run-command.js';

export const IMAGE_DIR = join(repoRoot, '.cache', 'images');

export interface ImageSpec {
  /** Reference the image is imported as, e.g. pcloud.local/pause:1. */
  tag: string;
  /** Path in the image → file on this machine (copied with its mode). */
  files: Record<string, string>;
  /** Path in the image → symlink target. */
  links?: Record<string, string>;
  /** Empty directories (/tmp gets mode 1777). */
  dirs?: string[];
  entrypoint?: string[];
  cmd?: string[];
}

export interface BuiltImage {
  tag: string;
  /** The image tarball (`docker save` layout). */
  path: string;
}

function tool(): string {
  const path = join(BIN_DIR, 'oci-image');
  if (!existsSync(path)) throw new Error(`${path} is missing: run 'make setup' first`);
  return path;
}

/** Builds (or finds in the cache) the image tarball of spec. */
export async function buildImage(spec: ImageSpec): Promise<BuiltImage> {
  const hash = createHash('sha256');
  hash.update(JSON.stringify(spec));
  hash.update(readFileSync(tool()));
  for (const src of Object.values(spec.files)) hash.update(readFileSync(src));
  const key = hash.digest('hex').slice(0, 16);
  mkdirSync(IMAGE_DIR, { recursive: true });
  const path = join(IMAGE_DIR, `${spec.tag.replace(/[^a-zA-Z0-9.-]+/g, '_')}-${key}.tar`);
  if (existsSync(path)) return { tag: spec.tag, path };
  const args = ['-o', path, '-tag', spec.tag];
  for (const [dest, src] of Object.entries(spec.files)) args.push('-file', `${dest}=${src}`);
  for (const [dest, target] of Object.entries(spec.links ?? {})) args.push('-link', `${dest}=${target}`);
  for (const d of spec.dirs ?? []) args.push('-dir', d);
  if (spec.entrypoint) args.push('-entrypoint', JSON.stringify(spec.entrypoint));
  if (spec.cmd) args.push('-cmd', JSON.stringify(spec.cmd));
  const r = await runCommand(tool(), args);
  if (r.code !== 0) throw new Error(`oci-image ${args.join(' ')} failed: ${r.stderr}`);
  return { tag: spec.tag, path };
}

/** The pod sandbox image: the static pause binary built from tools/pause. */
export const PAUSE_IMAGE = 'pcloud.local/pause:1';
export function pauseImage(): Promise<BuiltImage> {
  return buildImage({
    tag: PAUSE_IMAGE,
    files: { '/pause': join(BIN_DIR, 'pause') },
    entrypoint: ['/pause'],
  });
}

/** Debian's busybox-static as a tiny image (sh, wget, httpd, ip, ...). */
export const BUSYBOX_IMAGE = 'pcloud.local/busybox:1.35.0';
const BUSYBOX = '/bin/busybox';
export function busyboxImage(): Promise<BuiltImage> {
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing: run 'make setup' (busybox-static)`);
  const links: Record<string, string> = {};
  for (const applet of ['sh', 'cat', 'echo', 'hostname', 'ip', 'sleep', 'wget', 'httpd', 'ls', 'env'])
    links[`/bin/${applet}`] = 'busybox';
  return buildImage({
    tag: BUSYBOX_IMAGE,
    files: { '/bin/busybox': BUSYBOX },
    links,
    dirs: ['/tmp', '/etc', '/proc', '/sys', '/dev'],
    entrypoint: ['/bin/sh'],
  });
}
