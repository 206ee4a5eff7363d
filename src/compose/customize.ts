// The manifest's edits after the layers: remove (globs), files, symlinks,
// groups and users (appended to etc/passwd, group, shadow, gshadow as image
// builders do), and systemd units enabled or masked by symlinks.

import fs from 'node:fs';
import path from 'node:path';
import { StrataError, ioError } from '../errors.js';
import { type StagingTree, treeParts } from './tree.js';
import type { FileSpec, GroupSpec, UserSpec } from './manifest.js';

/** A glob over tree paths: `*` and `?` within one component, `**` across any number, `[...]` classes. */
export function globToRegExp(glob: string): RegExp {
  const g = treeParts(glob).join('/');
  let re = '';
  for (let i = 0; i < g.length; i++) {
    const c = g[i];
    if (c === '*') {
      if (g[i + 1] === '*') {
        // `**/` matches zero or more whole components; a trailing `**` matches anything below.
        if (g[i + 2] === '/') {
          re += '(?:[^/]+/)*';
          i += 2;
        } else {
          re += '.*';
          i += 1;
        }
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = g.indexOf(']', i + 2);
      if (end === -1) re += '\\[';
      else {
        let cls = g.slice(i + 1, end).replace(/\\/g, '\\\\');
        if (cls.startsWith('!')) cls = '^' + cls.slice(1);
        re += `[${cls}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Removes every entry matching a glob (directories whole); returns the paths removed. */
export function removeGlobs(tree: StagingTree, globs: string[]): string[] {
  const removed: string[] = [];
  for (const glob of globs) {
    const re = globToRegExp(glob);
    const hasMagic = /[*?[]/.test(glob);
    if (!hasMagic) {
      if (tree.remove(treeParts(glob))) removed.push('/' + treeParts(glob).join('/'));
      continue;
    }
    const walk = (dir: string, rel: string): void => {
      let names: string[];
      try {
        names = fs.readdirSync(dir).sort();
      } catch {
        return;
      }
      for (const name of names) {
        const r = rel ? `${rel}/${name}` : name;
        const p = path.join(dir, name);
        if (re.test(r)) {
          fs.rmSync(p, { recursive: true, force: true });
          removed.push('/' + r);
        } else if (fs.lstatSync(p).isDirectory()) walk(p, r);
      }
    };
    walk(tree.root, '');
  }
  return removed;
}

function parseColonFile(text: string | null): string[][] {
  if (text === null) return [];
  return text.split('\n').filter((l) => l !== '').map((l) => l.split(':'));
}

function formatColonFile(rows: string[][]): string {
  return rows.map((r) => r.join(':')).join('\n') + '\n';
}

/** Resolves `user:group` (names or numbers) against the tree's etc/passwd and etc/group. */
export function resolveOwner(tree: StagingTree, owner: string): { uid: number; gid: number } {
  const [u, g] = owner.split(':');
  const lookup = (file: string, name: string, what: string): number => {
    if (/^\d+$/.test(name)) return Number(name);
    const row = parseColonFile(tree.readFile(['etc', file])?.toString('utf8') ?? null).find((r) => r[0] === name);
    if (!row || !/^\d+$/.test(row[2] ?? '')) throw new StrataError('COMPOSE_CONFLICT', `no ${what} '${name}' in the tree's /etc/${file}; use a number or add it under ${what === 'user' ? 'users' : 'groups'}`, { name });
    return Number(row[2]);
  };
  return { uid: lookup('passwd', u, 'user'), gid: lookup('group', g, 'group') };
}

export function writeFiles(tree: StagingTree, files: FileSpec[]): void {
  for (const f of files) {
    const parts = treeParts(f.path);
    const owner = f.owner ? resolveOwner(tree, f.owner) : { uid: 0, gid: 0 };
    let mode = f.mode;
    let data: Buffer;
    if (f.source !== undefined) {
      let st: fs.Stats;
      try {
        st = fs.statSync(f.source);
        data = fs.readFileSync(f.source);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new StrataError('SOURCE_NOT_FOUND', `${f.source} does not exist`, { path: f.source });
        throw ioError(err, 'read', f.source);
      }
      if (!st.isFile()) throw new StrataError('SOURCE_NOT_FOUND', `${f.source} is not a regular file`, { path: f.source });
      // A copied file keeps its executable bits unless a mode is given; nothing else of the host's.
      mode ??= st.mode & 0o111 ? 0o755 : 0o644;
    } else {
      data = Buffer.from(f.content ?? '', 'utf8');
    }
    tree.writeFile(parts, data, { mode: mode ?? 0o644, uid: owner.uid, gid: owner.gid, xattrs: [] });
  }
}

export function writeSymlinks(tree: StagingTree, links: { path: string; target: string }[]): void {
  for (const l of links) tree.symlink(treeParts(l.path), l.target);
}

interface Account {
  file: string;
  rows: string[][];
  exists: boolean;
  mode: number;
  uid: number;
  gid: number;
}

function loadAccount(tree: StagingTree, file: string, mode: number): Account {
  const real = tree.realPath(['etc', file], true);
  const st = real ? tree.lstat(real) : null;
  return {
    file,
    rows: parseColonFile(tree.readFile(['etc', file])?.toString('utf8') ?? null),
    exists: !!st,
    mode: st ? st.mode & 0o7777 : mode,
    uid: st ? st.uid : 0,
    gid: st ? st.gid : 0,
  };
}

function saveAccount(tree: StagingTree, a: Account): void {
  tree.writeFile(['etc', a.file], Buffer.from(formatColonFile(a.rows)), { mode: a.mode, uid: a.uid, gid: a.gid, xattrs: [] });
}

/**
 * Groups first, then users; a user without gid gets a group of its own name
 * (gid = uid) unless one exists. Shadow files are written only when the tree
 * has them; password fields are locked ('!'), the last-change day comes from
 * the compose timestamp so the bytes do not depend on when compose ran.
 */
export function addAccounts(tree: StagingTree, groups: GroupSpec[], users: UserSpec[], timestamp: number): void {
  if (groups.length === 0 && users.length === 0) return;
  const passwd = loadAccount(tree, 'passwd', 0o644);
  const group = loadAccount(tree, 'group', 0o644);
  const shadow = loadAccount(tree, 'shadow', 0o640);
  const gshadow = loadAccount(tree, 'gshadow', 0o640);
  const day = String(Math.floor(timestamp / 86400));

  // Errors name the manifest entry they come from (manifestAt), so the message can point at its line.
  let at: (string | number)[] = [];
  const addGroup = (name: string, gid: number, members: string[]): void => {
    if (group.rows.some((r) => r[0] === name)) throw new StrataError('COMPOSE_CONFLICT', `group '${name}' already exists in /etc/group`, { name, manifestAt: at });
    const clash = group.rows.find((r) => r[2] === String(gid));
    if (clash) throw new StrataError('COMPOSE_CONFLICT', `gid ${gid} of group '${name}' is already group '${clash[0]}' in /etc/group`, { name, gid, manifestAt: at });
    group.rows.push([name, 'x', String(gid), members.join(',')]);
    if (gshadow.exists) gshadow.rows.push([name, '!', '', members.join(',')]);
  };
  for (const [i, g] of groups.entries()) {
    at = ['groups', i];
    addGroup(g.name, g.gid, g.members);
  }

  for (const [i, u] of users.entries()) {
    at = ['users', i];
    if (passwd.rows.some((r) => r[0] === u.name)) throw new StrataError('COMPOSE_CONFLICT', `user '${u.name}' already exists in /etc/passwd`, { name: u.name, manifestAt: at });
    const clash = passwd.rows.find((r) => r[2] === String(u.uid));
    if (clash) throw new StrataError('COMPOSE_CONFLICT', `uid ${u.uid} of user '${u.name}' is already user '${clash[0]}' in /etc/passwd`, { name: u.name, uid: u.uid, manifestAt: at });
    let gid = u.gid;
    if (gid === undefined) {
      const own = group.rows.find((r) => r[0] === u.name);
      if (own) gid = Number(own[2]);
      else {
        addGroup(u.name, u.uid, []);
        gid = u.uid;
      }
    }
    passwd.rows.push([u.name, 'x', String(u.uid), String(gid), u.gecos, u.home, u.shell]);
    if (shadow.exists) shadow.rows.push([u.name, '!', day, '0', '99999', '7', '', '', '']);
    for (const gname of u.groups) {
      const row = group.rows.find((r) => r[0] === gname);
      if (!row) throw new StrataError('COMPOSE_CONFLICT', `user '${u.name}' is to join group '${gname}', which is not in /etc/group; add it under groups`, { name: u.name, group: gname, manifestAt: at });
      const members = (row[3] ?? '').split(',').filter(Boolean);
      if (!members.includes(u.name)) row[3] = [...members, u.name].join(',');
      const srow = gshadow.rows.find((r) => r[0] === gname);
      if (srow) srow[3] = [...(srow[3] ?? '').split(',').filter(Boolean).filter((m) => m !== u.name), u.name].join(',');
    }
  }
  saveAccount(tree, group);
  saveAccount(tree, passwd);
  if (shadow.exists) saveAccount(tree, shadow);
  if (gshadow.exists) saveAccount(tree, gshadow);
}

const UNIT_DIRS = ['etc/systemd/system', 'usr/lib/systemd/system', 'lib/systemd/system'];

function findUnit(tree: StagingTree, name: string): { dir: string; text: string } | null {
  for (const dir of UNIT_DIRS) {
    const data = tree.readFile([...dir.split('/'), name]);
    if (data) return { dir, text: data.toString('utf8') };
  }
  return null;
}

/** [Install] settings of a unit file: WantedBy, RequiredBy, Alias, Also (each possibly repeated, space-separated). */
function installSection(text: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  let inInstall = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('[')) {
      inInstall = line === '[Install]';
      continue;
    }
    if (!inInstall || line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq).trim();
    const values = line.slice(eq + 1).trim().split(/\s+/).filter(Boolean);
    out[key] = [...(out[key] ?? []), ...values];
  }
  return out;
}

/** As `systemctl enable` and `mask` do it, offline: symlinks under etc/systemd/system. */
export function applyUnits(tree: StagingTree, enable: string[], mask: string[]): string[] {
  const made: string[] = [];
  const link = (rel: string, target: string): void => {
    tree.symlink(treeParts(rel), target);
    made.push(`/${rel} -> ${target}`);
  };
  const done = new Set<string>();
  let at: (string | number)[] = [];
  const enableOne = (name: string, requestedBy: string | null): void => {
    if (done.has(name)) return;
    done.add(name);
    // foo@bar.service is an instance of the template foo@.service.
    const sign = name.indexOf('@');
    const dot = name.lastIndexOf('.');
    const template = sign >= 0 && sign + 1 < dot ? `${name.slice(0, sign + 1)}${name.slice(dot)}` : null;
    const unit = findUnit(tree, name) ?? (template ? findUnit(tree, template) : null);
    if (!unit) {
      const why = requestedBy ? ` (named by Also= of ${requestedBy})` : '';
      throw new StrataError('COMPOSE_CONFLICT', `cannot enable ${name}${why}: no unit file in /${UNIT_DIRS.join(', /')}`, { unit: name, manifestAt: at });
    }
    const fileName = findUnit(tree, name) ? name : (template as string);
    const target = `/${unit.dir}/${fileName}`;
    const install = installSection(unit.text);
    const wanted = install.WantedBy ?? [];
    const required = install.RequiredBy ?? [];
    if (wanted.length + required.length + (install.Alias ?? []).length + (install.Also ?? []).length === 0) {
      throw new StrataError('COMPOSE_CONFLICT', `cannot enable ${name}: its unit file has no [Install] section (WantedBy=, RequiredBy=, Alias=)`, { unit: name, manifestAt: at });
    }
    for (const w of wanted) link(`etc/systemd/system/${w}.wants/${name}`, target);
    for (const r of required) link(`etc/systemd/system/${r}.requires/${name}`, target);
    for (const a of install.Alias ?? []) link(`etc/systemd/system/${a}`, target);
    for (const also of install.Also ?? []) enableOne(also, name);
  };
  for (const [i, name] of enable.entries()) {
    at = ['units', 'enable', i];
    enableOne(name, null);
  }
  for (const name of mask) link(`etc/systemd/system/${name}`, '/dev/null');
  return made;
}
