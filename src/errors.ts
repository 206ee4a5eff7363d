// One registry of the error codes strata reports. Each code has a short
// meaning and the process exit code the CLI uses for it; codes the fleet
// server answers with also carry an HTTP status. docs/errors.md lists
// the same codes; a test fails when the two disagree.

export const ERROR_CODES = {
  USAGE: { exit: 2, meaning: 'the command line is wrong (unknown flag, missing argument, bad value)' },
  INTERNAL: { exit: 70, meaning: 'a bug in strata; please report it with the command that caused it' },
  IO: { exit: 74, meaning: 'the operating system refused a read or write (permissions, disk full)' },
  GVARIANT_MALFORMED: { exit: 65, meaning: 'serialized GVariant data is truncated or inconsistent' },
  GVARIANT_VALUE: { exit: 70, meaning: 'a value does not fit the GVariant type it is serialized as' },
  OBJECT_MALFORMED: { exit: 65, meaning: 'an object in the repository cannot be parsed (truncated or corrupt)' },
  OBJECT_MISSING: { exit: 66, meaning: 'an object the operation needs is not in the repository' },
  OBJECT_CORRUPT: { exit: 65, meaning: "an object's content does not match its checksum" },
  INVALID_CHECKSUM: { exit: 2, meaning: 'a checksum is not 64 lowercase hexadecimal characters' },
  INVALID_REF: { exit: 2, meaning: 'a ref name is not valid: fragments must start with a letter, digit or `_` and hold only those, `-` and `.`' },
  REF_NOT_FOUND: { exit: 66, meaning: 'no ref or commit of that name exists in the repository' },
  NO_PARENT: { exit: 66, meaning: 'the commit has no parent (for `REF^`)' },
  REPO_NOT_FOUND: { exit: 66, meaning: 'the directory is not a strata/OSTree repository (no `config`)' },
  REPO_EXISTS: { exit: 73, meaning: 'a repository already exists at that path with another mode' },
  REPO_CONFIG: { exit: 78, meaning: "the repository's `config` is unreadable or names an unsupported mode" },
  REPO_LOCKED: { exit: 75, meaning: 'another strata process is writing to the repository' },
  UNSUPPORTED_FILE: { exit: 65, meaning: 'the tree holds an entry that cannot be committed (socket, fifo, device)' },
  SOURCE_NOT_FOUND: { exit: 66, meaning: 'the directory or tarball to commit does not exist' },
  TAR_MALFORMED: { exit: 65, meaning: 'the tarball is truncated, corrupt or holds an unsafe entry' },
  UNSAFE_PATH: { exit: 65, meaning: 'a tree entry name is unsafe (empty, `.`, `..`, holds `/` or NUL) or would escape' },
  PATH_NOT_FOUND: { exit: 66, meaning: 'no entry at that path in the commit' },
  NOT_A_DIRECTORY: { exit: 65, meaning: 'the path in the commit is not a directory' },
  NOT_A_FILE: { exit: 65, meaning: 'the path in the commit is not a regular file or symlink' },
  DEST_EXISTS: { exit: 73, meaning: 'the checkout destination exists and is not empty (use --union)' },
  FSCK_FAILED: { exit: 1, meaning: 'fsck found missing or corrupt objects; details are listed' },
  INVALID_TIMESTAMP: { exit: 2, meaning: 'a timestamp is neither ISO 8601 nor seconds since the epoch' },
  INVALID_DURATION: { exit: 2, meaning: 'a duration is not a number with a unit (s, m, h, d, w)' },
  TOOL_MISSING: { exit: 69, meaning: 'a program strata runs (xz, zstd) is not installed; the message names the Debian package' },
  SYSROOT_NOT_FOUND: { exit: 66, meaning: 'the directory is not a sysroot (no `ostree/repo`); create one with `strata admin init-fs`' },
  STATEROOT_NOT_FOUND: { exit: 66, meaning: 'the stateroot does not exist; create it with `strata admin os-init`' },
  INVALID_STATEROOT: { exit: 2, meaning: 'a stateroot name is not valid (letters, digits, `_`, `-`, `.`; not starting with `.`)' },
  SYSROOT_LOCKED: { exit: 75, meaning: 'another strata process is changing the sysroot' },
  DEPLOYMENT_NOT_FOUND: { exit: 66, meaning: 'no deployment has that index or checksum' },
  DEPLOYMENT_IN_USE: { exit: 73, meaning: 'the deployment is booted, staged, pinned or the only one, and cannot be removed' },
  NO_KERNEL: { exit: 65, meaning: 'the commit holds no kernel at `usr/lib/modules/<kver>/vmlinuz`' },
  TREE_LAYOUT: { exit: 65, meaning: 'the tree cannot be deployed as it is (for example it has both `/etc` and `/usr/etc`)' },
  INVALID_KARG: { exit: 2, meaning: 'a kernel argument is malformed (empty, holds a newline or unbalanced quote, or sets `ostree=`)' },
  NO_ROLLBACK: { exit: 66, meaning: 'there is no other deployment to roll back to' },
  NOT_BOOTED: { exit: 66, meaning: 'no booted deployment was found (no `ostree=` in /proc/cmdline, or it names no deployment)' },
  HEALTH_FAILED: { exit: 1, meaning: 'a required health check failed; the boot was not blessed' },
  VERIFY_FAILED: { exit: 1, meaning: '`admin verify` found files that differ from the commit; details are listed' },
  MOUNT_FAILED: { exit: 71, meaning: 'a mount or namespace operation of `admin prepare-root` failed (needs root)' },
  KEY_INVALID: { exit: 65, meaning: 'a key is not an ed25519 key in OSTree\'s encoding (base64 of a 32-byte public key, or of a 64-byte secret key: seed then public key)' },
  KEY_EXISTS: { exit: 73, meaning: 'the key file to write already exists; strata never overwrites a key' },
  SIGNATURE_MISSING: { exit: 66, meaning: 'the commit or summary has no ed25519 signature (`ostree.sign.ed25519`) to verify' },
  SIGNATURE_INVALID: { exit: 1, meaning: 'no ed25519 signature verifies with the trusted keys: the data was changed or signed by another key' },
  SUMMARY_NOT_FOUND: { exit: 66, meaning: 'the repository or remote has no `summary` file; create one with `strata summary -u`' },
  SUMMARY_MALFORMED: { exit: 65, meaning: 'a `summary` or `summary.sig` file cannot be parsed' },
  REPO_MODE: { exit: 65, meaning: 'the operation needs a repository of another mode (`serve` needs an archive repository)' },
  INVALID_REMOTE: { exit: 2, meaning: 'a remote name or URL is not valid (names: letters, digits, `_`, `-`, `.`; URLs: http, https or file)' },
  REMOTE_EXISTS: { exit: 73, meaning: 'a remote of that name is already configured; delete it first' },
  REMOTE_NOT_FOUND: { exit: 66, meaning: 'no remote of that name is configured in the repository' },
  HTTP_ERROR: { exit: 69, meaning: 'a download failed: connection refused or reset, timeout, or an HTTP status other than success' },
  DOWNGRADE_REFUSED: { exit: 1, meaning: 'the pulled commit is older than the one the local ref names; pass `--allow-downgrade` to move back' },
  DELTA_NOT_FOUND: { exit: 66, meaning: 'the repository or remote has no static delta between those commits; make one with `strata static-delta generate`' },
  DELTA_MALFORMED: { exit: 65, meaning: 'a static delta superblock or part cannot be parsed' },
  DELTA_CORRUPT: { exit: 65, meaning: 'a static delta part or the object it makes does not match its checksum; nothing was stored' },
  LISTEN_FAILED: { exit: 71, meaning: 'the server could not listen on the address (port in use, or not permitted)' },
  MANIFEST_INVALID: { exit: 65, meaning: 'the compose manifest is not valid YAML or breaks the schema; the message names the file, line, key and what is expected' },
  COMPOSE_CONFLICT: { exit: 65, meaning: 'compose inputs disagree: a layer puts a file where a directory is, two packages ship one path, a user or group already exists' },
  DEB_MALFORMED: { exit: 65, meaning: 'a `.deb` is not a valid Debian package (not an ar archive, or missing debian-binary, control.tar or data.tar)' },
  OCI_INVALID: { exit: 65, meaning: 'an OCI image layout or `docker save` archive is malformed, or a blob does not match its sha256 digest' },
  NEEDS_ROOT: { exit: 77, meaning: 'the operation needs root (chroot for postprocess or debootstrap, setting file owners)' },
  COMMAND_FAILED: { exit: 1, meaning: 'a command strata ran for the user failed (a postprocess command, debootstrap, apt-get download); its last output line is shown' },
  FLEET_BAD_REQUEST: { exit: 2, http: 400, meaning: 'a fleet API request or fleet command input breaks the schema (a missing field, a value too long or of the wrong format); the message names the field' },
  FLEET_UNAUTHORIZED: { exit: 77, http: 401, meaning: 'the request carries no token, or a token the fleet server does not know (revoked, mistyped, or for another server)' },
  FLEET_FORBIDDEN: { exit: 77, http: 403, meaning: 'the token is valid but not allowed to do this: a viewer writing, a device reporting for another device, a device token on the admin API' },
  FLEET_NOT_FOUND: { exit: 66, http: 404, meaning: 'no fleet object (device, group, channel, release, rollout) has that name or id' },
  FLEET_CONFLICT: { exit: 73, http: 409, meaning: 'the fleet object exists already, or its state does not allow the action (resuming an aborted rollout, a second active rollout for a group)' },
  FLEET_ENROLLMENT_REFUSED: { exit: 77, http: 403, meaning: 'the enrollment token is unknown, expired, or a one-time token that was used already; ask for a new one' },
  FLEET_RATE_LIMITED: { exit: 75, http: 429, meaning: 'too many requests from this address (enrollment is rate-limited); retry after the time the server gives' },
  FLEET_DB: { exit: 69, http: 503, meaning: 'the fleet database is unreachable or refused the operation (bad --db URL, server down, schema newer than this strata)' },
  FLEET_AUDIT_BROKEN: { exit: 1, http: 500, meaning: 'the audit log hash chain does not verify: an entry was altered or removed; the message names the first bad sequence number' },
  AGENT_NOT_ENROLLED: { exit: 78, meaning: 'the agent has no server or device token: run `strata agent enroll` or pass `--server` and `--token`' },
  AGENT_STATE_INVALID: { exit: 65, meaning: "the agent's state file is not valid JSON of a known version; the message names the file (move it away to start over)" },
  AGENT_SERVER_UNREACHABLE: { exit: 69, meaning: 'the fleet server could not be reached, timed out or answered 5xx; the agent retries with back-off' },
  AGENT_REJECTED: { exit: 77, meaning: 'the fleet server refused the request (4xx): a bad or revoked token, an enrollment token already used, a report it does not accept' },
  AGENT_PROTOCOL: { exit: 76, meaning: "the fleet server's answer does not match the device API contract (docs/fleet-api.md)" },
  AGENT_STAGE_FAILED: { exit: 1, meaning: 'the agent could not pull, verify or stage the commit the server asked for; it reports the reason and retries' },
  PACKAGE_CONFLICT: { exit: 65, meaning: 'a package to layer ships a file the base image has with other content, or a package the base image already holds; nothing was deployed' },
  PACKAGE_NOT_LAYERED: { exit: 66, meaning: '`admin uninstall` names a package that is not layered on the deployment (see `admin status`)' },
  TRANSACTION_FAILED: { exit: 1, meaning: 'the command of `admin transaction` exited non-zero (or was killed); nothing was deployed' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * The HTTP status an API answers with for a code: the registry's when it has
 * one, else from the kind of exit code (usage 400, not found 404, bad data
 * 422), else 500.
 */
export function httpStatusOf(code: ErrorCode): number {
  const entry = ERROR_CODES[code];
  if ('http' in entry) return entry.http;
  if (entry.exit === 2) return 400;
  if (entry.exit === 66) return 404;
  if (entry.exit === 65) return 422;
  return 500;
}

/** Every error strata raises on purpose: a stable code plus structured data. */
export class StrataError extends Error {
  readonly code: ErrorCode;
  readonly data: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, data: Record<string, unknown> = {}) {
    super(message);
    this.name = 'StrataError';
    this.code = code;
    this.data = data;
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }
}

export function isStrataError(err: unknown, code?: ErrorCode): err is StrataError {
  return err instanceof StrataError && (code === undefined || err.code === code);
}

/** Turns a Node system error into a one-line StrataError naming the path. */
export function ioError(err: unknown, action: string, path: string): StrataError {
  const e = err as NodeJS.ErrnoException;
  const why = e?.code ? `${e.code}${e.message ? ': ' + e.message.replace(/^[A-Z]+: /, '').split(',')[0] : ''}` : String(err);
  return new StrataError('IO', `cannot ${action} ${path}: ${why}`, { path, errno: e?.code });
}
