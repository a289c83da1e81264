// Long-lived child processes without the parent's stray descriptors.
//
// Node opens everything close-on-exec; native libraries need not. tpm2-tss's swtpm TCTI socket
// (open while a TPM command is in flight) and /dev/tpmrm0 are such descriptors: a daemon spawned
// at that moment keeps them for its whole life. swtpm serves one connection at a time, so one
// inherited socket blocks every later command of the agent that owns the TPM — seen in CI, where
// a swtpm spawned by a test held a verifier's socket and its ActivateCredential never returned.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'

/** bash: close every descriptor above 2, then exec "$@". */
const CLOSE_INHERITED_FDS =
  'for f in /proc/$$/fd/*; do f=${f##*/}; if [ "$f" -gt 2 ] 2>/dev/null; then eval "exec $f>&-"; fi; done; exec "$@"'

/**
 * spawn(command, args, options) for a process that outlives the moment: it starts with only
 * stdin, stdout and stderr (as `options.stdio` sets them). Same pid as the command (bash execs
 * it), so signals and `exit` work as with spawn.
 */
export function spawnClean(command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  return spawn('bash', ['-c', CLOSE_INHERITED_FDS, command, command, ...args], options)
}
