// Debian packages as layers: a .deb is an ar archive of debian-binary,
// control.tar.* and data.tar.*; data.tar goes into the tree without running
// maintainer scripts, and the package is recorded as dpkg records it
// (var/lib/dpkg/status with "install ok unpacked", info/NAME.list and
// .md5sums), so package tools and later diffs see what the image holds.
// Package names are fetched with `apt-get download` (the machine's apt sources).

import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { StrataError, ioError } from '../errors.js';
import { readAr } from '../core/ar.js';
import { TarReader } from '../core/tar.js';
import { openTarball } from '../repo/source-tar.js';
import { applyTarball } from './apply.js';
import type { StagingTree } from './tree.js';

export interface DebInfo {
  file: string;
  package: string;
  version: string;
  architecture: string;
  files: number;
}

interface Stanza {
  fields: [string, string][];
}

function parseControl(text: string): Stanza[] {
  const out: Stanza[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const fields: [string, string][] = [];
    for (const line of block.split('\n')) {
      if (line === '') continue;
      if ((line.startsWith(' ') || line.startsWith('\t')) && fields.length > 0) {
        fields[fields.length - 1][1] += '\n' + line;
        continue;
      }
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      fields.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
    }
    if (fields.length > 0) out.push({ fields });
  }
  return out;
}

const field = (s: Stanza, name: string): string | undefined => s.fields.find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1];

function formatStanzas(stanzas: Stanza[]): string {
  return stanzas.map((s) => s.fields.map(([k, v]) => `${k}: ${v}`.replace(/: \n/, ':\n')).join('\n') + '\n').join('\n');
}

/** Reads the named members of a (compressed) tarball into memory. */
async function readTarMembers(file: string, wanted: Set<string>): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const input = openTarball(file);
  const reader = new TarReader();
  let cur: { name: string; chunks: Buffer[] } | null = null;
  try {
    for await (const chunk of input.chunks) {
      for (const ev of reader.push(chunk as Buffer)) {
        if (ev.kind === 'entry') {
          const name = ev.entry.path.replace(/^\.\//, '');
          cur = ev.entry.type === 'file' && wanted.has(name) ? { name, chunks: [] } : null;
        } else if (ev.kind === 'data' && cur) cur.chunks.push(Buffer.from(ev.bytes));
        else if (ev.kind === 'entry-end' && cur) {
          out.set(cur.name, Buffer.concat(cur.chunks));
          cur = null;
        }
      }
    }
    await input.finish();
    reader.end();
  } finally {
    input.close();
  }
  return out;
}

/** Downloads packages by name with apt-get into dir; returns the .deb files in the order asked. */
export function aptDownload(names: string[], dir: string): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  for (const name of names) {
    const before = new Set(fs.readdirSync(dir));
    const r = spawnSync('apt-get', ['download', '-q', name], { cwd: dir, encoding: 'utf8' });
    if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new StrataError('TOOL_MISSING', `cannot fetch package ${name}: the 'apt-get' command is missing; install the Debian package apt`, { command: 'apt-get', package: 'apt' });
    }
    if (r.status !== 0) {
      const last = (r.stderr || r.stdout).trim().split('\n').pop() ?? '';
      throw new StrataError('COMMAND_FAILED', `apt-get download ${name} failed: ${last} (is the package name right, and 'apt-get update' done?)`, { package: name });
    }
    const added = fs.readdirSync(dir).filter((f) => !before.has(f) && f.endsWith('.deb'));
    if (added.length !== 1) throw new StrataError('COMMAND_FAILED', `apt-get download ${name} left ${added.length} new .deb files, expected one`, { package: name });
    files.push(path.join(dir, added[0]));
  }
  return files;
}

export interface DebLayerState {
  /** Non-directory path → the package that put it there, across all deb layers of a compose. */
  owners: Map<string, string>;
  /** Temp directory for members and downloads. */
  work: string;
  /**
   * Called before a package's file, symlink or hard link replaces a
   * non-directory that no package of this run put there (the base's own
   * file, still on disk at `real`): client-side layering refuses those.
   */
  onReplace?: (pkg: string, treePath: string, real: string) => void;
}

interface OpenedDeb {
  stanza: Stanza;
  pkg: string;
  version: string;
  arch: string;
  ctl: Map<string, Buffer>;
  /** The data.tar member, written out to a file of `dir`. */
  dataFile: string;
  dataName: string;
}

/** Checks a .deb's ar structure and reads its control members; data.tar is written to `dir`. */
async function openDeb(file: string, dir: string): Promise<OpenedDeb> {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new StrataError('SOURCE_NOT_FOUND', `${file} does not exist`, { path: file });
    throw ioError(err, 'read', file);
  }
  const bad = (why: string) => new StrataError('DEB_MALFORMED', `${file} is not a valid Debian package: ${why}`, { path: file });
  let members;
  try {
    members = readAr(buf);
  } catch (err) {
    if (err instanceof StrataError) throw bad(err.message.replace(/^not a valid ar archive: /, 'not an ar archive: '));
    throw err;
  }
  if (members[0]?.name !== 'debian-binary' || !/^2\.\d+\n/.test(members[0].data.toString('latin1'))) throw bad("its first member is not 'debian-binary' with format 2.x");
  const control = members.find((m) => /^control\.tar(\.(gz|xz|zst))?$/.test(m.name));
  const data = members.find((m) => /^data\.tar(\.(gz|xz|zst))?$/.test(m.name));
  if (!control) throw bad('no control.tar member (or one compressed other than gzip, xz, zstd)');
  if (!data) throw bad('no data.tar member (or one compressed other than gzip, xz, zstd)');
  const controlFile = path.join(dir, control.name);
  const dataFile = path.join(dir, data.name);
  fs.writeFileSync(controlFile, control.data);
  fs.writeFileSync(dataFile, data.data);
  let ctl: Map<string, Buffer>;
  try {
    ctl = await readTarMembers(controlFile, new Set(['control', 'md5sums', 'conffiles']));
  } catch (err) {
    if (err instanceof StrataError) throw bad(`its ${control.name}: ${err.message}`);
    throw err;
  }
  const stanza = parseControl(ctl.get('control')?.toString('utf8') ?? '')[0];
  const pkg = stanza && field(stanza, 'Package');
  const version = stanza && field(stanza, 'Version');
  if (!stanza || !pkg || !version) throw bad('its control file has no Package or Version');
  return { stanza, pkg, version, arch: field(stanza, 'Architecture') ?? 'all', ctl, dataFile, dataName: data.name };
}

/** A .deb's name, version and architecture, after the same checks applyDeb makes (temp files go to `work`). */
export async function readDebInfo(file: string, work: string): Promise<Omit<DebInfo, 'files'>> {
  const dir = fs.mkdtempSync(path.join(work, 'deb-'));
  try {
    const d = await openDeb(file, dir);
    return { file, package: d.pkg, version: d.version, architecture: d.arch };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The packages a dpkg status file lists as installed or unpacked (`name:arch`). */
export function packagesInStatus(text: string): { package: string; architecture: string }[] {
  return parseControl(text)
    .filter((s) => !/\bnot-installed\b|\bconfig-files\b/.test(field(s, 'Status') ?? ''))
    .map((s) => ({ package: field(s, 'Package') ?? '', architecture: field(s, 'Architecture') ?? 'all' }))
    .filter((p) => p.package !== '');
}

/** Unpacks one .deb into the tree and records it in the tree's dpkg database. */
export async function applyDeb(tree: StagingTree, file: string, state: DebLayerState): Promise<DebInfo> {
  const dir = fs.mkdtempSync(path.join(state.work, 'deb-'));
  try {
    const { stanza, pkg, version, arch, ctl, dataFile, dataName } = await openDeb(file, dir);
    const bad = (why: string) => new StrataError('DEB_MALFORMED', `${file} is not a valid Debian package: ${why}`, { path: file });
    const listed: string[] = ['/.'];
    let files = 0;
    try {
      await applyTarball(tree, dataFile, {
        keepExistingDirs: true,
        beforeWrite: (parts) => {
          if (!state.onReplace) return;
          const p = '/' + parts.join('/');
          if (state.owners.has(p)) return; // a package of this run: the owners check below decides
          const real = tree.realPath(parts, false);
          const st = real === null ? null : tree.lstat(real);
          if (real !== null && st && !st.isDirectory()) state.onReplace(pkg, p, real);
        },
        onPath: (parts, entry) => {
          if (parts.length === 0) return; // the root is the list's '/.'
          const p = '/' + parts.join('/');
          listed.push(p);
          if (entry.type === 'directory') return;
          files++;
          const owner = state.owners.get(p);
          if (owner !== undefined && owner !== pkg) {
            throw new StrataError('COMPOSE_CONFLICT', `package ${pkg} ships ${p}, which package ${owner} put there already`, { path: p, package: pkg, owner });
          }
          state.owners.set(p, pkg);
        },
      });
    } catch (err) {
      if (err instanceof StrataError && (err.code === 'TAR_MALFORMED')) throw bad(`its ${dataName}: ${err.message}`);
      throw err;
    }

    recordInDpkg(tree, stanza, pkg, arch, listed, ctl);
    return { file, package: pkg, version, architecture: arch, files };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const DPKG_FILE = { mode: 0o644, uid: 0, gid: 0, xattrs: [] };

function recordInDpkg(tree: StagingTree, control: Stanza, pkg: string, arch: string, listed: string[], ctl: Map<string, Buffer>): void {
  for (const d of [['var'], ['var', 'lib'], ['var', 'lib', 'dpkg'], ['var', 'lib', 'dpkg', 'info']]) {
    if (tree.realPath(d) === null || !tree.lstat(tree.realPath(d) as string)) tree.mkdir(d, { mode: 0o755, uid: 0, gid: 0, xattrs: [] });
  }
  const fields = control.fields.filter(([k]) => k !== 'Status');
  // dpkg records each conffile's md5 as unpacked; computed here, since md5sums is optional in a .deb.
  const md5 = (p: string): string => {
    const data = tree.readFile(p.split('/').filter(Boolean));
    return data ? createHash('md5').update(data).digest('hex') : 'newconffile';
  };
  const conffiles = (ctl.get('conffiles')?.toString('utf8') ?? '').split('\n').map((l) => l.trim()).filter((l) => l.startsWith('/'));
  const entry: Stanza = { fields: [fields[0], ['Status', 'install ok unpacked'], ...fields.slice(1)] };
  if (conffiles.length > 0) entry.fields.push(['Conffiles', '\n' + conffiles.map((c) => ` ${c} ${md5(c)}`).join('\n')]);

  const statusParts = ['var', 'lib', 'dpkg', 'status'];
  const stanzas = parseControl(tree.readFile(statusParts)?.toString('utf8') ?? '');
  const key = (s: Stanza) => `${field(s, 'Package')}:${field(s, 'Architecture') ?? 'all'}`;
  const kept = stanzas.filter((s) => key(s) !== `${pkg}:${arch}`);
  kept.push(entry);
  kept.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  tree.writeFile(statusParts, Buffer.from(formatStanzas(kept)), DPKG_FILE);

  const multiArchSame = field(control, 'Multi-Arch') === 'same';
  const infoName = multiArchSame ? `${pkg}:${arch}` : pkg;
  tree.writeFile(['var', 'lib', 'dpkg', 'info', `${infoName}.list`], Buffer.from(listed.join('\n') + '\n'), DPKG_FILE);
  const sums = ctl.get('md5sums');
  if (sums) tree.writeFile(['var', 'lib', 'dpkg', 'info', `${infoName}.md5sums`], sums, DPKG_FILE);
}

/** `scripts: true`: the tree's own dpkg installs the packages in a chroot, maintainer scripts and all. */
export async function installDebsWithScripts(tree: StagingTree, files: string[], timestamp: number): Promise<DebInfo[]> {
  const dpkg = tree.realPath(['usr', 'bin', 'dpkg']);
  if (dpkg === null || !tree.lstat(dpkg)?.isFile()) {
    throw new StrataError('COMMAND_FAILED', 'scripts: true needs dpkg in the tree (/usr/bin/dpkg); use a Debian base, or leave scripts out to unpack the packages', {});
  }
  const infos: DebInfo[] = [];
  const inTree = '/tmp/strata-compose-debs';
  const dir = path.join(tree.root, inTree);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  try {
    const names: string[] = [];
    for (const [i, f] of files.entries()) {
      const members = readAr(fs.readFileSync(f));
      const control = members.find((m) => /^control\.tar/.test(m.name));
      if (!control) throw new StrataError('DEB_MALFORMED', `${f} is not a valid Debian package: no control.tar member`, { path: f });
      const name = `${String(i).padStart(3, '0')}-${path.basename(f)}`;
      fs.copyFileSync(f, path.join(dir, name));
      names.push(`${inTree}/${name}`);
      const ctlFile = path.join(dir, `${name}.${control.name}`);
      fs.writeFileSync(ctlFile, control.data);
      const stanza = parseControl((await readTarMembers(ctlFile, new Set(['control']))).get('control')?.toString('utf8') ?? '')[0];
      fs.rmSync(ctlFile);
      infos.push({ file: f, package: (stanza && field(stanza, 'Package')) ?? '', version: (stanza && field(stanza, 'Version')) ?? '', architecture: (stanza && field(stanza, 'Architecture')) ?? 'all', files: 0 });
    }
    const env = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', DEBIAN_FRONTEND: 'noninteractive', SOURCE_DATE_EPOCH: String(timestamp), HOME: '/root' };
    const r = spawnSync('chroot', [tree.root, 'dpkg', '--force-confdef', '--force-confold', '-i', ...names], { encoding: 'utf8', env });
    if (r.status !== 0) {
      const last = `${r.stderr ?? ''}${r.error ? String(r.error) : ''}`.trim().split('\n').filter(Boolean).pop() ?? `exit ${r.status}`;
      throw new StrataError('COMMAND_FAILED', `dpkg -i in the tree failed: ${last}`, { files });
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  // dpkg's own logs would make the tree depend on when compose ran.
  for (const log of [['var', 'log', 'dpkg.log'], ['var', 'log', 'alternatives.log']]) tree.remove(log);
  return infos;
}
