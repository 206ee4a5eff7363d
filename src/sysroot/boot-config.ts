// Writing a new boot configuration and switching to it in one rename, as
// OSTree does: the entries go into the unused `boot/loader.<1-B>` and the
// deployment links into `ostree/boot.<1-B>.0`, everything is made durable
// (syncfs), and only then does `boot/loader` (a symlink) move to the new
// directory. A power cut before that rename boots the old configuration,
// after it the new one; there is no moment in between.

import fs from 'node:fs';
import path from 'node:path';
import { ioError } from '../errors.js';
import { fsyncDir } from '../repo/repo.js';
import { syncfs } from '../repo/transaction.js';
import { formatEntryName, serializeEntry } from './bls.js';
import { type BootSpec, type Sysroot, deploymentName } from './sysroot.js';

/** One deployment of the configuration to write, in boot order. */
export type BootDeployment = BootSpec;

/** Writes `list` (default first) as the new boot configuration and switches to it. */
export function writeBootConfig(sysroot: Sysroot, list: BootDeployment[]): void {
  const current = sysroot.bootversion();
  const next = 1 - current;
  const boot = sysroot.bootDir;
  const ostreeDir = path.join(sysroot.path, 'ostree');
  try {
    // The deployment links: ostree/boot.N.0/<stateroot>/<bootcsum>/<bootserial>.
    const farm = path.join(ostreeDir, `boot.${next}.0`);
    fs.rmSync(farm, { recursive: true, force: true });
    const bootserials = new Map<string, number>();
    const entries: { name: string; text: string }[] = [];
    for (const [index, d] of list.entries()) {
      const key = `${d.stateroot}/${d.bootcsum}`;
      const bootserial = bootserials.get(key) ?? 0;
      bootserials.set(key, bootserial + 1);
      fs.mkdirSync(path.join(farm, key), { recursive: true, mode: 0o755 });
      fs.symlinkSync(`../../../deploy/${d.stateroot}/deploy/${deploymentName(d)}`, path.join(farm, key, String(bootserial)));
      const version = list.length - index;
      const options = [...d.kargs, `ostree=/ostree/boot.${next}/${key}/${bootserial}`].join(' ');
      const fields: [string, string][] = [
        ['title', `${d.titleBase} (strata:${d.stateroot}:${index})`],
        ['version', String(version)],
        ['options', options],
        ['linux', d.linux],
      ];
      if (d.initrd) fields.push(['initrd', d.initrd]);
      entries.push({ name: formatEntryName({ base: `ostree-${version}-${d.stateroot}`, triesLeft: d.triesLeft, triesDone: d.triesDone }), text: serializeEntry({ fields }) });
    }
    replaceSymlink(`boot.${next}.0`, path.join(ostreeDir, `boot.${next}`));

    const loader = path.join(boot, `loader.${next}`);
    fs.rmSync(loader, { recursive: true, force: true });
    fs.mkdirSync(path.join(loader, 'entries'), { recursive: true, mode: 0o755 });
    for (const e of entries) fs.writeFileSync(path.join(loader, 'entries', e.name), e.text, { mode: 0o644 });

    // Everything above durable before the switch (boot may be another filesystem).
    syncfs(boot);
    if (fs.statSync(boot).dev !== fs.statSync(ostreeDir).dev) syncfs(ostreeDir);
    replaceSymlink(`loader.${next}`, path.join(boot, 'loader'));
  } catch (err) {
    throw ioError(err, 'write the boot configuration in', boot);
  }
}

/** Points `link` at `target` atomically (new symlink under a temp name, renamed over). */
export function replaceSymlink(target: string, link: string): void {
  const tmp = `${link}.tmp-${process.pid}`;
  fs.rmSync(tmp, { force: true });
  fs.symlinkSync(target, tmp);
  fs.renameSync(tmp, link);
  fsyncDir(path.dirname(link));
}
